//! The durable spool: every signed envelope is written here, and synced to
//! disk, before it is sent, and removed only after the server has
//! acknowledged it. A report survives the agent crashing, the machine
//! rebooting, and the server being down for weeks.
//!
//! Trees: `outbox` (seq, big-endian → envelope protobuf bytes), `rejected`
//! (seq → envelope and the server's reason, kept as evidence), `meta`
//! (`next_seq`; `inventory_sha256`, the hash of the last full inventory
//! spooled, which decides whether the next report can be a heartbeat;
//! `seq_raised`, set if `next_seq` was ever raised to the server's; notes
//! written with an envelope, such as `last_wipe_attested`).

use std::path::Path;

use anyhow::Context;
use custodian_proto::v1 as pb;
use prost::Message;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

const NEXT_SEQ_KEY: &[u8] = b"next_seq";
const INVENTORY_SHA256_KEY: &[u8] = b"inventory_sha256";
/// Set when the next sequence number was raised to the server's (text:
/// `from A to B`); see [`Spool::raise_next_seq`].
const SEQ_RAISED_KEY: &[u8] = b"seq_raised";

/// What [`Spool::raise_next_seq`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqRaise {
    /// The next sequence number was already above the floor.
    NotNeeded,
    /// Raised, from this next sequence number.
    Raised {
        /// The next sequence number before.
        from: u64,
    },
    /// Not raised: this spool was raised once already (`from A to B`).
    RefusedAgain {
        /// The earlier raise.
        earlier: String,
    },
}

/// The agent's spool.
pub struct Spool {
    db: sled::Db,
    /// sled's own file, opened again so that a sync can end with an
    /// `fdatasync` (see [`Spool::sync`]).
    db_file: std::fs::File,
    outbox: sled::Tree,
    rejected: sled::Tree,
    meta: sled::Tree,
    /// Why a sync failed, once one has: the spool then refuses everything
    /// (see [`Spool::sync`]).
    sync_failure: std::sync::Mutex<Option<String>>,
    /// Makes the next sync fail, as a disk error would (tests only).
    #[cfg(test)]
    fail_next_sync: std::sync::atomic::AtomicBool,
}

impl Spool {
    /// Opens (or creates) the spool at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let db = sled::open(path).map_err(|e| match e {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
                anyhow::anyhow!(
                    "the spool at {} is in use by another custodian-agent process (is the daemon running?)",
                    path.display()
                )
            }
            e => anyhow::Error::new(e).context(format!("open spool {}", path.display())),
        })?;
        let db_file = std::fs::File::open(path.join("db")).context("open the spool's file")?;
        Ok(Self {
            db_file,
            outbox: db.open_tree("outbox")?,
            rejected: db.open_tree("rejected")?,
            meta: db.open_tree("meta")?,
            sync_failure: std::sync::Mutex::default(),
            #[cfg(test)]
            fail_next_sync: std::sync::atomic::AtomicBool::default(),
            db,
        })
    }

    /// Allocates the next sequence number, lets `sign` build the envelope
    /// for it, stores the envelope, and syncs to disk before returning.
    pub fn append(&self, sign: impl Fn(u64) -> pb::SignedEnvelope) -> anyhow::Result<u64> {
        self.append_noting(sign, None)
    }

    /// As [`Spool::append`], and records `note` (a meta key and value) in
    /// the same transaction, so that the envelope and the note are on disk
    /// together or not at all.
    pub fn append_noting(
        &self,
        sign: impl Fn(u64) -> pb::SignedEnvelope,
        note: Option<(&[u8], &[u8])>,
    ) -> anyhow::Result<u64> {
        let res = (&self.meta, &self.outbox).transaction(|(meta, outbox)| {
            let seq = next_seq(meta)?;
            outbox.insert(&seq.to_be_bytes(), sign(seq).encode_to_vec())?;
            meta.insert(NEXT_SEQ_KEY, &(seq + 1).to_be_bytes())?;
            if let Some((key, value)) = note {
                meta.insert(key, value)?;
            }
            Ok(seq)
        });
        let seq = res.map_err(|e| transaction_error(e, "write spool"))?;
        self.sync()?;
        Ok(seq)
    }

    /// Makes the next sequence number at least `floor`, and syncs. For a
    /// spool that was lost or replaced: the server refuses numbers at or
    /// below the last it accepted, and says which that was. Done once in a
    /// spool's life: a second time means another machine is sending as this
    /// device (a cloned disk image), and leapfrogging it would hide that.
    pub fn raise_next_seq(&self, floor: u64) -> anyhow::Result<SeqRaise> {
        let res = self.meta.transaction(|meta| {
            let current = next_seq(meta)?;
            if floor <= current {
                return Ok(SeqRaise::NotNeeded);
            }
            if let Some(earlier) = meta.get(SEQ_RAISED_KEY)? {
                let earlier = String::from_utf8_lossy(&earlier).into_owned();
                return Ok(SeqRaise::RefusedAgain { earlier });
            }
            meta.insert(NEXT_SEQ_KEY, &floor.to_be_bytes())?;
            meta.insert(SEQ_RAISED_KEY, format!("from {current} to {floor}").as_bytes())?;
            Ok(SeqRaise::Raised { from: current })
        });
        let raise = res.map_err(|e| transaction_error(e, "write spool meta"))?;
        if matches!(raise, SeqRaise::Raised { .. }) {
            self.sync()?;
        }
        Ok(raise)
    }

    /// Up to `limit` spooled envelopes, oldest first. Nothing, once a sync
    /// has failed: an envelope that may not be on disk must not reach the
    /// server, or a power cut would let its sequence number be used again.
    pub fn pending(&self, limit: usize) -> anyhow::Result<Vec<(u64, pb::SignedEnvelope)>> {
        self.check_synced()?;
        self.outbox
            .iter()
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.context("read spool")?;
                let seq = u64::from_be_bytes(key.as_ref().try_into().context("spool key is corrupt")?);
                let envelope = pb::SignedEnvelope::decode(value.as_ref()).context("spooled envelope is corrupt")?;
                Ok((seq, envelope))
            })
            .collect()
    }

    /// How many envelopes wait to be sent.
    pub fn len(&self) -> usize {
        self.outbox.len()
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.outbox.is_empty()
    }

    /// Removes an acknowledged envelope.
    pub fn acknowledge(&self, seq: u64) -> anyhow::Result<()> {
        self.outbox.remove(seq.to_be_bytes()).context("remove acknowledged report")?;
        Ok(())
    }

    /// Moves a refused envelope aside with the server's reason.
    pub fn reject(&self, seq: u64, envelope: &pb::SignedEnvelope, reason: &str) -> anyhow::Result<()> {
        let mut record = reason.as_bytes().to_vec();
        record.push(0);
        record.extend_from_slice(&envelope.encode_to_vec());
        self.rejected.insert(seq.to_be_bytes(), record).context("record rejected report")?;
        self.outbox.remove(seq.to_be_bytes()).context("remove rejected report")?;
        Ok(())
    }

    /// A note recorded with [`Spool::append_noting`].
    pub fn note(&self, key: &[u8]) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self.meta.get(key).context("read spool meta")?.map(|v| v.to_vec()))
    }

    /// The hash of the last full inventory spooled, unless the server has
    /// since asked for a full one.
    pub fn inventory_sha256(&self) -> anyhow::Result<Option<[u8; 32]>> {
        let value = self.meta.get(INVENTORY_SHA256_KEY).context("read spool meta")?;
        Ok(value.and_then(|v| v.as_ref().try_into().ok()))
    }

    /// Records the hash of a full inventory just spooled, or forgets it
    /// (`None`) so the next report carries the full inventory.
    pub fn set_inventory_sha256(&self, sha256: Option<[u8; 32]>) -> anyhow::Result<()> {
        match sha256 {
            Some(hash) => self.meta.insert(INVENTORY_SHA256_KEY, &hash).context("write spool meta")?,
            None => self.meta.remove(INVENTORY_SHA256_KEY).context("write spool meta")?,
        };
        Ok(())
    }

    /// Syncs removals to disk.
    pub fn flush(&self) -> anyhow::Result<()> {
        self.sync()
    }

    /// Makes every write so far durable: sled's flush, then an `fdatasync`
    /// of its file. sled 0.34's flush stops at `sync_file_range`, which
    /// neither empties the disk's write cache nor writes the file's metadata
    /// (spacejam/sled#1452), so a power cut could otherwise take a report
    /// the agent has just spooled, and with it the sequence number it used.
    ///
    /// Once a sync has failed, every later call fails: after a failed
    /// `fdatasync` the kernel may have dropped the unwritten pages, and a
    /// later sync can succeed without them. The agent must be restarted, and
    /// then carries on from what is really on disk.
    fn sync(&self) -> anyhow::Result<()> {
        self.check_synced()?;
        let res = self.flush_and_sync();
        if let Err(e) = &res {
            *self.sync_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(custodian_proto::errors::chain_text(e.as_ref()));
        }
        res
    }

    fn flush_and_sync(&self) -> anyhow::Result<()> {
        #[cfg(test)]
        if self.fail_next_sync.swap(false, std::sync::atomic::Ordering::SeqCst) {
            anyhow::bail!("sync the spool's file: injected failure");
        }
        self.db.flush().context("sync spool")?;
        self.db_file.sync_data().context("sync the spool's file")?;
        Ok(())
    }

    /// Fails if a sync has failed (see [`Spool::sync`]).
    fn check_synced(&self) -> anyhow::Result<()> {
        match self.sync_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            Some(why) => Err(sync_failed(why)),
            None => Ok(()),
        }
    }

    /// Whether a sync has failed, so that the agent must restart.
    pub fn sync_failed(&self) -> bool {
        self.check_synced().is_err()
    }
}

/// The next sequence number, as a transaction reads it (1 in a new spool).
fn next_seq(meta: &TransactionalTree) -> Result<u64, ConflictableTransactionError<&'static str>> {
    match meta.get(NEXT_SEQ_KEY)? {
        Some(bytes) => Ok(u64::from_be_bytes(
            bytes.as_ref().try_into().map_err(|_| ConflictableTransactionError::Abort("next_seq is corrupt"))?,
        )),
        None => Ok(1),
    }
}

/// A spool transaction's failure; `what` names the write.
fn transaction_error(e: TransactionError<&'static str>, what: &'static str) -> anyhow::Error {
    match e {
        TransactionError::Abort(why) => anyhow::anyhow!("spool: {why}"),
        TransactionError::Storage(e) => anyhow::Error::new(e).context(what),
    }
}

/// The error every spool call returns once a sync has failed.
fn sync_failed(why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "an earlier sync of the spool failed ({why}); what was written since may not be on disk, so nothing more is \
         spooled or sent: restart custodian-agent (it carries on from what is on disk)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_seq_only_goes_up() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.append(envelope).unwrap(), 1);
        assert_eq!(spool.raise_next_seq(41).unwrap(), SeqRaise::Raised { from: 2 });
        assert_eq!(spool.append(envelope).unwrap(), 41);
        assert_eq!(spool.raise_next_seq(7).unwrap(), SeqRaise::NotNeeded);
        assert_eq!(spool.append(envelope).unwrap(), 42);
        // Twice in a spool's life means two machines sending as one.
        let again = spool.raise_next_seq(100).unwrap();
        assert_eq!(again, SeqRaise::RefusedAgain { earlier: "from 2 to 41".to_owned() });
        assert_eq!(spool.append(envelope).unwrap(), 43);
    }

    #[test]
    fn after_a_failed_sync_nothing_more_is_spooled_or_sent() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.append(envelope).unwrap(), 1);
        spool.fail_next_sync.store(true, std::sync::atomic::Ordering::SeqCst);
        let err = format!("{:#}", spool.append(envelope).unwrap_err());
        assert!(err.contains("injected failure"), "{err}");
        assert!(spool.sync_failed());
        // Not even the report synced before the failure: what is on disk is
        // settled at the restart.
        let err = format!("{:#}", spool.pending(10).unwrap_err());
        assert!(
            err.contains("an earlier sync of the spool failed") && err.contains("restart custodian-agent"),
            "{err}"
        );
        assert!(spool.append(envelope).is_err());
        assert!(spool.flush().is_err());
        // Reopened (the restart), the spool works again.
        drop(spool);
        let spool = Spool::open(dir.path()).unwrap();
        assert!(!spool.sync_failed());
        assert!(!spool.pending(10).unwrap().is_empty());
    }

    fn envelope(seq: u64) -> pb::SignedEnvelope {
        pb::SignedEnvelope { payload: seq.to_be_bytes().to_vec(), payload_type: "t".to_owned(), signature: vec![] }
    }

    /// The `fdatasync` that ends a sync is only worth anything if it is of
    /// the file sled writes.
    #[test]
    fn the_file_a_sync_syncs_is_the_one_sled_writes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let before = spool.db_file.metadata().unwrap().len();
        let big = |seq: u64| pb::SignedEnvelope {
            payload: vec![seq as u8; 4096],
            payload_type: "t".to_owned(),
            signature: vec![],
        };
        for _ in 0..64 {
            spool.append(big).unwrap();
        }
        let after = spool.db_file.metadata().unwrap().len();
        assert!(
            after >= before + 64 * 4096,
            "sled wrote 256 KiB elsewhere: the file went from {before} to {after} bytes"
        );
    }

    #[test]
    fn envelopes_survive_reopening_and_leave_only_when_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let spool = Spool::open(dir.path()).unwrap();
            assert_eq!(spool.append(envelope).unwrap(), 1);
            assert_eq!(spool.append(envelope).unwrap(), 2);
            assert_eq!(spool.append(envelope).unwrap(), 3);
            spool.acknowledge(1).unwrap();
            spool.flush().unwrap();
        }
        // sled releases its file lock from a background thread after the
        // last handle drops, so a reopen in the same process may race it.
        let spool = (0..100)
            .find_map(|_| {
                Spool::open(dir.path()).ok().or_else(|| {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    None
                })
            })
            .expect("the spool reopens once sled has released its lock");
        let pending = spool.pending(10).unwrap();
        assert_eq!(pending.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(pending[0].1, envelope(2));
        // Sequence numbers keep counting after a restart; they never repeat.
        assert_eq!(spool.append(envelope).unwrap(), 4);
        spool.reject(2, &envelope(2), "bad").unwrap();
        assert_eq!(spool.pending(10).unwrap().iter().map(|(s, _)| *s).collect::<Vec<_>>(), vec![3, 4]);
    }
}
