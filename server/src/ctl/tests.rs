//! Tests for custodianctl's argument parsing.

use super::*;

#[test]
fn a_token_lifetime_is_a_second_or_more() {
    assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
    assert_eq!(parse_ttl("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(parse_ttl("0s"), Err("0s is too short: a token must stay valid for at least 1s".to_owned()));
    assert!(parse_ttl("500ms").is_err());
    assert!(parse_ttl("banana").is_err());
}

#[test]
fn a_plan_with_engineers_who_install_nothing_is_refused_by_the_parser() {
    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        rollout: RolloutCommand,
    }
    let parse = |capacity: &str| {
        <Cli as clap::Parser>::try_parse_from([
            "custodianctl",
            "create",
            "wave-1",
            "--start",
            "2026-12-01",
            "--end",
            "2026-12-31",
            "--engineer-capacity",
            capacity,
        ])
    };
    // 0 on the wire means "not given" (the default, 8), so it cannot be sent.
    let err = parse("0").err().expect("0 is refused").to_string();
    assert!(err.contains("--engineer-capacity") && err.contains("0 is not in 1.."), "{err}");
    assert!(parse("3").is_ok());
}
