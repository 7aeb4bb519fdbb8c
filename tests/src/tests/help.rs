//! `--help` from each binary: it says which program it is and what it is for,
//! rather than another package's description.

use crate::Bin;
use crate::process::run;

#[tokio::test]
async fn each_binary_s_help_describes_that_binary() {
    for (bin, opening, commands) in [
        (Bin::Ctl, "custodianctl: the operators' command line", &["device", "rollout", "audit", "disposals"][..]),
        (Bin::Server, "The Custodian server:", &["init", "serve", "operator"][..]),
        (Bin::Agent, "The Custodian agent:", &["enroll", "report", "run", "wipe", "inventory"][..]),
    ] {
        let mut cmd = bin.command();
        cmd.arg("--help");
        let out = run(cmd).await.success();
        assert!(out.stdout.starts_with(opening), "`{} --help` should open with {opening:?}:\n{out}", bin.name());
        assert!(!out.stdout.contains("and custodianctl, the operators' CLI"), "{out}");
        for command in commands {
            assert!(out.stdout.contains(&format!("\n  {command} ")), "`{} --help` lacks {command}:\n{out}", bin.name());
        }
    }
}
