//! Backups: one consistent snapshot of a node's whole store in a versioned file, streamed by
//! `Admin.Backup`, restored into an empty data folder, and verified offline.
//!
//! File format 1 (integers big-endian):
//! - the magic `passerelle-bkup\n` (16 bytes), then the format byte `1`;
//! - the header: a u32 length, then the JSON of [`Header`] (agency, head seq, creation
//!   time, counts, state digest of the records);
//! - one entry per key of the store (records, sync log, metadata with the peers'
//!   cursors), in key order: `E`, u32 key length, key, u32 value length, value;
//! - the trailer: `T`, the number of entries as u64, then the SHA-256 of every byte
//!   before it (magic to entry count). Nothing follows.
//!
//! The snapshot is copied to a temporary file under the store's writer lock (writers
//! wait for a local file copy, never for the network), then streamed from that file.

use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use passerelle_model::codec::decode_content;
use passerelle_model::envelope::{encode_payload, Seal};
use passerelle_model::{AgencyId, Rules};
use passerelle_node::{Node, NodeConfig};
use passerelle_pki::TrustStore;
use passerelle_store::{
    AnyEngine, ConsistencyReport, Engine, KeyValue, RecordStore, SledEngine, StateDigest,
    StoreError,
};
use ring::digest::{Context, SHA256};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::pb::v1 as pb;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 16] = b"passerelle-bkup\n";
/// The format this release writes and reads.
pub const FORMAT: u8 = 1;
const MAX_HEADER: u32 = 1 << 20;
const MAX_KEY: u32 = 1 << 16;
const MAX_VALUE: u32 = 64 << 20;
/// Bytes per `BackupChunk`.
const CHUNK: usize = 256 << 10;
const TRAILER_LEN: u64 = 1 + 8 + 32;

/// What a backup holds, written before its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub agency: String,
    /// The release that wrote the backup.
    pub node_version: String,
    /// When the snapshot was taken, seconds since 1970 (UTC).
    pub created_unix: u64,
    pub head_seq: u64,
    pub purged_through_seq: u64,
    pub records: u64,
    pub log_entries: u64,
    /// Entries in the file: records, log entries and metadata.
    pub keys: u64,
    /// The state digest of the records (hex), as `verify` and `status` print it.
    pub digest: String,
}

impl Header {
    /// The creation time as `YYYY-MM-DD HH:MM:SS UTC`.
    pub fn created(&self) -> String {
        format_unix(self.created_unix)
    }
}

/// Why a backup could not be taken or read.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("not a passerelle backup file (it does not start with the backup magic)")]
    NotABackup,
    #[error(
        "unsupported backup format {0} (this release reads format {FORMAT}): use the release that wrote it"
    )]
    Format(u8),
    #[error("the backup file is truncated: it ends before its trailer (an interrupted copy?)")]
    Truncated,
    #[error("the backup file is corrupt: {0}")]
    Corrupt(String),
}

/// The one place a failed backup becomes a gRPC status.
pub fn status(e: &BackupError) -> Status {
    match e {
        BackupError::Store(StoreError::Engine(_)) | BackupError::Io(_) => {
            Status::unavailable(format!("backup failed: {e}"))
        }
        _ => Status::internal(format!("backup failed: {e}")),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` of seconds since 1970.
pub fn format_unix(secs: u64) -> String {
    let date = passerelle_model::Date((secs / 86_400) as i32);
    let s = secs % 86_400;
    format!(
        "{date} {:02}:{:02}:{:02} UTC",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn write_entry(w: &mut impl Write, k: &[u8], v: &[u8]) -> io::Result<u64> {
    w.write_all(b"E")?;
    w.write_all(&(k.len() as u32).to_be_bytes())?;
    w.write_all(k)?;
    w.write_all(&(v.len() as u32).to_be_bytes())?;
    w.write_all(v)?;
    Ok(9 + k.len() as u64 + v.len() as u64)
}

/// A snapshot copied to an anonymous temporary file, ready to be streamed.
pub struct Snapshot {
    pub header: Header,
    /// Magic, format byte and header.
    prefix: Vec<u8>,
    /// The entries, positioned at their start.
    body: std::fs::File,
    body_len: u64,
}

impl Snapshot {
    /// Copies the whole store under its writer lock: writers wait for the copy.
    pub fn take(node: &Node) -> Result<Snapshot, BackupError> {
        let mut body = BufWriter::with_capacity(1 << 20, tempfile::tempfile()?);
        let mut body_len = 0u64;
        let summary = node.store().export_raw(|k, v| {
            if k.len() > MAX_KEY as usize || v.len() > MAX_VALUE as usize {
                return Err(BackupError::Corrupt(format!(
                    "store entry {} is too large for a backup",
                    k.escape_ascii()
                )));
            }
            body_len += write_entry(&mut body, k, v)?;
            Ok(())
        })?;
        let mut body = body.into_inner().map_err(|e| e.into_error())?;
        body.rewind()?;
        let header = Header {
            agency: node.agency().to_string(),
            node_version: crate::NODE_VERSION.into(),
            created_unix: now_unix(),
            head_seq: summary.head_seq,
            purged_through_seq: summary.purged_through_seq,
            records: summary.records,
            log_entries: summary.log_entries,
            keys: summary.keys,
            digest: summary.digest.to_string(),
        };
        let json = serde_json::to_vec(&header).expect("headers always serialise");
        let mut prefix = Vec::with_capacity(MAGIC.len() + 5 + json.len());
        prefix.extend_from_slice(MAGIC);
        prefix.push(FORMAT);
        prefix.extend_from_slice(&(json.len() as u32).to_be_bytes());
        prefix.extend_from_slice(&json);
        Ok(Snapshot {
            header,
            prefix,
            body,
            body_len,
        })
    }

    /// The size of the whole backup file.
    pub fn total_bytes(&self) -> u64 {
        self.prefix.len() as u64 + self.body_len + TRAILER_LEN
    }

    /// Writes the whole backup file to `out`.
    pub fn write_to(mut self, out: &mut impl Write) -> Result<(), BackupError> {
        let mut hasher = Context::new(&SHA256);
        hasher.update(&self.prefix);
        out.write_all(&self.prefix)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = self.body.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.write_all(&trailer(hasher, self.header.keys))?;
        Ok(())
    }
}

/// The trailer of a file whose bytes so far went into `hasher`.
fn trailer(mut hasher: Context, keys: u64) -> Vec<u8> {
    let mut t = Vec::with_capacity(TRAILER_LEN as usize);
    t.push(b'T');
    t.extend_from_slice(&keys.to_be_bytes());
    hasher.update(&t);
    t.extend_from_slice(hasher.finish().as_ref());
    t
}

/// The chunks of a backup of `node`, for `Admin.Backup`: a snapshot is taken when the
/// stream starts, then sent in chunks; the first one carries the total size.
pub fn backup_stream(node: Arc<Node>) -> ReceiverStream<Result<pb::BackupChunk, Status>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = send_backup(node, &tx).await {
            tracing::warn!(error = %e, "backup failed");
            let _ = tx.send(Err(status(&e))).await;
        }
    });
    ReceiverStream::new(rx)
}

async fn send_backup(
    node: Arc<Node>,
    tx: &mpsc::Sender<Result<pb::BackupChunk, Status>>,
) -> Result<(), BackupError> {
    let started = std::time::Instant::now();
    let snap = tokio::task::spawn_blocking(move || Snapshot::take(&node))
        .await
        .map_err(io::Error::other)??;
    let total = snap.total_bytes();
    tracing::info!(
        records = snap.header.records,
        head_seq = snap.header.head_seq,
        bytes = total,
        ms = started.elapsed().as_millis() as u64,
        "backup snapshot taken"
    );
    let mut hasher = Context::new(&SHA256);
    hasher.update(&snap.prefix);
    let keys = snap.header.keys;
    let send = |data: Vec<u8>| {
        tx.send(Ok(pb::BackupChunk {
            data,
            total_bytes: total,
        }))
    };
    if send(snap.prefix).await.is_err() {
        return Ok(());
    }
    let mut body = tokio::fs::File::from_std(snap.body);
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            let n = body.read(&mut buf[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled == 0 {
            break;
        }
        buf.truncate(filled);
        hasher.update(&buf);
        if send(buf).await.is_err() {
            tracing::info!("backup cancelled by the client");
            return Ok(());
        }
    }
    let _ = send(trailer(hasher, keys)).await;
    tracing::info!(bytes = total, "backup sent");
    Ok(())
}

/// Reads a backup file entry by entry, checking its structure as it goes and its
/// SHA-256 and entry count at the trailer.
pub struct BackupReader<R: Read> {
    r: R,
    hasher: Context,
    header: Header,
    entries: u64,
    finished: bool,
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), BackupError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BackupError::Truncated,
        _ => BackupError::Io(e),
    })
}

impl<R: Read> BackupReader<R> {
    /// Reads and checks the magic, the format and the header.
    pub fn open(mut r: R) -> Result<Self, BackupError> {
        let mut hasher = Context::new(&SHA256);
        let mut magic = [0u8; 16];
        match read_exact(&mut r, &mut magic) {
            Err(BackupError::Truncated) => return Err(BackupError::NotABackup),
            other => other?,
        }
        if &magic != MAGIC {
            return Err(BackupError::NotABackup);
        }
        let mut fmt_len = [0u8; 5];
        read_exact(&mut r, &mut fmt_len)?;
        if fmt_len[0] != FORMAT {
            return Err(BackupError::Format(fmt_len[0]));
        }
        let len = u32::from_be_bytes(fmt_len[1..].try_into().expect("4 bytes"));
        if len > MAX_HEADER {
            return Err(BackupError::Corrupt(format!(
                "header length {len} is implausible"
            )));
        }
        let mut json = vec![0u8; len as usize];
        read_exact(&mut r, &mut json)?;
        let header: Header = serde_json::from_slice(&json)
            .map_err(|e| BackupError::Corrupt(format!("header: {e}")))?;
        hasher.update(&magic);
        hasher.update(&fmt_len);
        hasher.update(&json);
        Ok(BackupReader {
            r,
            hasher,
            header,
            entries: 0,
            finished: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn hashed(&mut self, buf: &mut [u8]) -> Result<(), BackupError> {
        read_exact(&mut self.r, buf)?;
        self.hasher.update(buf);
        Ok(())
    }

    fn hashed_u32(&mut self) -> Result<u32, BackupError> {
        let mut b = [0u8; 4];
        self.hashed(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// The next entry; `None` once the trailer has been read and checked.
    pub fn next_entry(&mut self) -> Result<Option<KeyValue>, BackupError> {
        if self.finished {
            return Ok(None);
        }
        let mut tag = [0u8; 1];
        self.hashed(&mut tag)?;
        match tag[0] {
            b'E' => {
                let klen = self.hashed_u32()?;
                if klen > MAX_KEY {
                    return Err(BackupError::Corrupt(format!(
                        "entry {} has an implausible key length {klen}",
                        self.entries
                    )));
                }
                let mut k = vec![0u8; klen as usize];
                self.hashed(&mut k)?;
                let vlen = self.hashed_u32()?;
                if vlen > MAX_VALUE {
                    return Err(BackupError::Corrupt(format!(
                        "entry {} has an implausible value length {vlen}",
                        self.entries
                    )));
                }
                let mut v = vec![0u8; vlen as usize];
                self.hashed(&mut v)?;
                self.entries += 1;
                Ok(Some((k, v)))
            }
            b'T' => {
                let mut count = [0u8; 8];
                self.hashed(&mut count)?;
                let count = u64::from_be_bytes(count);
                let mut sha = [0u8; 32];
                read_exact(&mut self.r, &mut sha)?;
                self.finished = true;
                let hasher = std::mem::replace(&mut self.hasher, Context::new(&SHA256));
                if hasher.finish().as_ref() != sha {
                    return Err(BackupError::Corrupt(
                        "its SHA-256 does not match its contents".into(),
                    ));
                }
                if count != self.entries || count != self.header.keys {
                    return Err(BackupError::Corrupt(format!(
                        "{} entries read, the trailer says {count}, the header {}",
                        self.entries, self.header.keys
                    )));
                }
                let mut extra = [0u8; 1];
                if self.r.read(&mut extra)? != 0 {
                    return Err(BackupError::Corrupt("bytes follow the trailer".into()));
                }
                Ok(None)
            }
            other => Err(BackupError::Corrupt(format!(
                "unexpected byte {other:#04x} after entry {}",
                self.entries
            ))),
        }
    }
}

impl<R: Read> Iterator for BackupReader<R> {
    type Item = Result<KeyValue, BackupError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.next_entry().transpose();
        if matches!(item, Some(Err(_))) {
            self.finished = true;
        }
        item
    }
}

/// Counts the bytes read through it, for progress bars.
struct Counting<'a, R> {
    inner: R,
    on_bytes: &'a dyn Fn(u64),
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

fn open_reader<'a>(
    path: &Path,
    on_bytes: &'a dyn Fn(u64),
) -> anyhow::Result<BackupReader<Counting<'a, BufReader<std::fs::File>>>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    BackupReader::open(Counting {
        inner: BufReader::with_capacity(1 << 20, file),
        on_bytes,
    })
    .map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Reads a whole backup file and checks its structure, count and SHA-256; returns its header.
pub fn check_file(path: &Path, on_bytes: &dyn Fn(u64)) -> anyhow::Result<Header> {
    let mut reader = open_reader(path, on_bytes)?;
    while reader
        .next_entry()
        .map_err(|e| anyhow!("{}: {e}", path.display()))?
        .is_some()
    {}
    Ok(reader.header)
}

/// What a restore wrote and found.
#[derive(Debug)]
pub struct RestoreReport {
    pub header: Header,
    pub data_dir: PathBuf,
    pub consistency: ConsistencyReport,
    pub digest: StateDigest,
}

fn is_empty_dir(p: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(p) {
        Ok(mut it) => Ok(it.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(anyhow!("cannot read {}: {e}", p.display())),
    }
}

/// Writes the backup at `from` into the sled store at `data_dir`, which must be absent
/// or empty; with `agency`, the backup must be that agency's. The file is read twice:
/// checked whole first, so a truncated or corrupt file writes nothing; then imported.
/// The restored store is opened and checked, and its digest compared with the header's.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    agency: Option<&AgencyId>,
    cache_bytes: u64,
    on_bytes: &dyn Fn(u64),
) -> anyhow::Result<RestoreReport> {
    if data_dir.exists() && !data_dir.is_dir() {
        return Err(anyhow!("{} is not a folder", data_dir.display()));
    }
    if !is_empty_dir(data_dir)? {
        return Err(anyhow!(
            "{} is not empty: restore only writes into an empty data folder; stop the node and move the old folder aside first",
            data_dir.display()
        ));
    }
    let header = check_file(from, &|_| {})?;
    if let Some(a) = agency {
        if header.agency != a.as_str() {
            return Err(anyhow!(
                "{} is a backup of {}, not of this node's agency {a}",
                from.display(),
                header.agency
            ));
        }
    }
    let created = !data_dir.exists();
    let result = import_into(from, data_dir, cache_bytes, on_bytes, &header);
    if result.is_err() {
        // leave the folder as it was found: absent, or empty
        let _ = std::fs::remove_dir_all(data_dir);
        if !created {
            let _ = std::fs::create_dir_all(data_dir);
        }
    }
    let (consistency, digest) = result?;
    Ok(RestoreReport {
        header,
        data_dir: data_dir.to_path_buf(),
        consistency,
        digest,
    })
}

fn import_into(
    from: &Path,
    data_dir: &Path,
    cache_bytes: u64,
    on_bytes: &dyn Fn(u64),
    header: &Header,
) -> anyhow::Result<(ConsistencyReport, StateDigest)> {
    let mut reader = open_reader(from, on_bytes)?;
    if reader.header() != header {
        return Err(anyhow!("{} changed while it was read", from.display()));
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let engine = SledEngine::open(data_dir, cache_bytes)
        .with_context(|| format!("cannot create the store in {}", data_dir.display()))?;
    RecordStore::import_raw(&engine, &mut reader)
        .map_err(|e| anyhow!("{}: {e}", from.display()))?;
    let store = RecordStore::open(engine)?;
    let consistency = store.check_consistency()?;
    let digest = store.digest()?;
    store.flush()?;
    if digest.to_string() != header.digest || digest.records != header.records {
        return Err(anyhow!(
            "the restored records have digest {digest} ({} records), the backup header says {} ({} records)",
            digest.records,
            header.digest,
            header.records
        ));
    }
    Ok((consistency, digest))
}

/// What `verify` found.
#[derive(Debug)]
pub struct VerifyReport {
    /// The store's own invariants: log/record bijection, head, metadata.
    pub consistency: ConsistencyReport,
    pub records: u64,
    /// Records whose origin signature verified.
    pub signatures_ok: u64,
    /// Problems with records (signatures, content), the first [`VerifyReport::MAX_LISTED`].
    pub problems: Vec<String>,
    pub problems_total: u64,
    pub digest: StateDigest,
}

impl VerifyReport {
    pub const MAX_LISTED: usize = 100;

    pub fn is_ok(&self) -> bool {
        self.consistency.is_ok() && self.problems_total == 0
    }

    fn problem(&mut self, p: String) {
        self.problems_total += 1;
        if self.problems.len() < Self::MAX_LISTED {
            self.problems.push(p);
        }
    }

    /// Every problem, store invariants first, one per line.
    pub fn problem_lines(&self) -> Vec<String> {
        let mut out = self.consistency.problems.clone();
        if self.consistency.problems_total > self.consistency.problems.len() as u64 {
            out.push(format!(
                "… and {} more store problems",
                self.consistency.problems_total - self.consistency.problems.len() as u64
            ));
        }
        out.extend(self.problems.iter().cloned());
        if self.problems_total > self.problems.len() as u64 {
            out.push(format!(
                "… and {} more record problems",
                self.problems_total - self.problems.len() as u64
            ));
        }
        out
    }
}

/// Checks a store as the node would serve it: its invariants, every record's origin
/// signature against `trust` (which must hold this node's own signing key too), and that
/// every record's content decodes to a valid record of its key (what the in-memory
/// indexes are built from).
pub fn verify_store<E: Engine>(
    store: &RecordStore<E>,
    own: &AgencyId,
    trust: &TrustStore,
    own_rules: &Rules,
) -> Result<VerifyReport, StoreError> {
    let consistency = store.check_consistency()?;
    let mut report = VerifyReport {
        consistency,
        records: 0,
        signatures_ok: 0,
        problems: Vec::new(),
        problems_total: 0,
        digest: store.digest()?,
    };
    let other_rules = Rules::default();
    for item in store.iter(None) {
        let r = match item {
            Ok(r) => r,
            Err(e @ StoreError::Engine(_)) => return Err(e),
            // undecodable values are already in the consistency report
            Err(_) => continue,
        };
        report.records += 1;
        let key = &r.key;
        match Seal::decode(&r.seal) {
            Err(e) => report.problem(format!("{key}: seal does not decode: {e}")),
            Ok(seal) => {
                if &key.origin != own && trust.get(&key.origin).is_none() {
                    report.problem(format!(
                        "{key}: origin {} is not in the trust file",
                        key.origin
                    ));
                } else {
                    match trust.signing_key(&key.origin, &seal.key_id) {
                        None => report.problem(format!(
                            "{key}: signing key {} of {} is not in the trust file",
                            seal.key_id, key.origin
                        )),
                        Some(public) => {
                            let payload =
                                encode_payload(key, r.revision, r.updated_at_micros, &r.content);
                            if passerelle_pki::verify_signature(&public, &payload, &seal.signature)
                            {
                                report.signatures_ok += 1;
                            } else {
                                report.problem(format!(
                                    "{key} revision {}: signature does not verify (altered after signing)",
                                    r.revision
                                ));
                            }
                        }
                    }
                }
            }
        }
        let rules = if &key.origin == own {
            own_rules
        } else {
            &other_rules
        };
        match decode_content(key.kind, &r.content) {
            Err(e) => report.problem(format!("{key}: content does not decode: {e}")),
            Ok(rec) => {
                if rec.id() != key.id || rec.origin() != key.origin.as_str() {
                    report.problem(format!("{key}: content names another key"));
                } else if let Err(v) =
                    rec.validate(passerelle_node::request_prefix(key.kind), rules)
                {
                    report.problem(format!("{key}: invalid content: {v}"));
                }
            }
        }
    }
    Ok(report)
}

/// The trust store `verify` checks signatures with: partners from the trust file, plus
/// this node's own signing key.
pub fn node_trust(cfg: &NodeConfig) -> anyhow::Result<TrustStore> {
    let key_path = cfg.path(&cfg.signing.key);
    let pem = std::fs::read_to_string(&key_path)
        .with_context(|| format!("cannot read signing key {}", key_path.display()))?;
    let signing = passerelle_pki::SigningKey::from_pem(&pem)
        .map_err(|e| anyhow!("signing key {}: {e}", key_path.display()))?;
    Ok(passerelle_node::load_trust(cfg, &signing)?)
}

fn rules(cfg: &NodeConfig) -> Rules {
    Rules {
        min_cell_size: cfg.records.min_cell_size,
    }
}

/// Verifies the store of a stopped node, as configured.
pub fn verify_node(cfg: &NodeConfig) -> anyhow::Result<VerifyReport> {
    let trust = node_trust(cfg)?;
    let dir = cfg.path(&cfg.data_dir);
    if is_empty_dir(&dir)? {
        return Err(anyhow!(
            "no store in {}: the node has never run there (or restore a backup first)",
            dir.display()
        ));
    }
    let engine = SledEngine::open(&dir, cfg.store.cache_capacity_mb * 1024 * 1024).map_err(|e| {
        anyhow!(
            "cannot open the store in {}: {e} (is the node still running? stop it first, or verify a backup with --from)",
            dir.display()
        )
    })?;
    let store = RecordStore::open(AnyEngine::from(engine))?;
    Ok(verify_store(&store, &cfg.agency, &trust, &rules(cfg))?)
}

/// Verifies a backup file: restores it into a temporary store, then checks it like a
/// node's store, with the trust of the node configured by `cfg`.
pub fn verify_backup(
    cfg: &NodeConfig,
    from: &Path,
    on_bytes: &dyn Fn(u64),
) -> anyhow::Result<(Header, VerifyReport)> {
    let trust = node_trust(cfg)?;
    let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
    let dir = tmp.path().join("data");
    let restored = restore(from, &dir, Some(&cfg.agency), 64 << 20, on_bytes)?;
    let engine = SledEngine::open(&dir, 64 << 20)?;
    let store = RecordStore::open(AnyEngine::from(engine))?;
    let report = verify_store(&store, &cfg.agency, &trust, &rules(cfg))?;
    Ok((restored.header, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_format() {
        assert_eq!(format_unix(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn reader_checks_magic_format_and_trailer() {
        let header = Header {
            agency: "tg.anpe".into(),
            node_version: "0".into(),
            created_unix: 0,
            head_seq: 1,
            purged_through_seq: 0,
            records: 0,
            log_entries: 0,
            keys: 1,
            digest: String::new(),
        };
        let json = serde_json::to_vec(&header).unwrap();
        let mut file = MAGIC.to_vec();
        file.push(FORMAT);
        file.extend_from_slice(&(json.len() as u32).to_be_bytes());
        file.extend_from_slice(&json);
        write_entry(&mut file, b"mhead", b"x").unwrap();
        let mut hasher = Context::new(&SHA256);
        hasher.update(&file);
        file.extend_from_slice(&trailer(hasher, 1));

        let all: Vec<_> = BackupReader::open(&file[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(all, vec![(b"mhead".to_vec(), b"x".to_vec())]);

        let cut = &file[..file.len() - 5];
        let err = BackupReader::open(cut)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(matches!(err, BackupError::Truncated), "{err}");

        let mut flipped = file.clone();
        let at = flipped.len() - 42;
        flipped[at] ^= 1;
        let err = BackupReader::open(&flipped[..])
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");

        let mut longer = file.clone();
        longer.push(0);
        assert!(BackupReader::open(&longer[..])
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .is_err());

        let mut other = file.clone();
        other[16] = 9;
        assert!(matches!(
            BackupReader::open(&other[..]),
            Err(BackupError::Format(9))
        ));
        assert!(matches!(
            BackupReader::open(&b"hello"[..]),
            Err(BackupError::NotABackup)
        ));
    }
}
