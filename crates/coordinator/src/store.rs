//! Durable state in SQLite: runs, jobs, attempts, results and agent history.
//!
//! Specs and results are stored as their protobuf encoding so the schema does not
//! chase every API field. A result row is keyed by job id: the first one wins.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use prost::Message;
use quantfarm_proto::v1::{JobResult, JobSpec, JobState};
use rusqlite::{Connection, OptionalExtension, params};

pub struct Store {
    conn: Connection,
    /// The database file, named in every error.
    path: PathBuf,
    /// Held for the store's lifetime: one coordinator per database.
    _lock: DbLock,
}

/// A job as loaded at start-up.
pub struct StoredJob {
    pub run_id: String,
    pub spec: JobSpec,
    pub state: JobState,
    pub attempts: u32,
    pub agent: String,
    pub result: Option<JobResult>,
}

pub struct StoredRun {
    pub id: String,
    pub name: String,
    pub cancelled: bool,
}

/// An exclusive advisory lock on `<db>.lock`, held while the coordinator runs. The
/// file holds the owner's process id so a refused second coordinator can name it.
/// The lock goes with the process (closing the file, or the process dying, frees it),
/// so a coordinator killed with SIGKILL never leaves a stale lock behind.
struct DbLock {
    _file: std::fs::File,
}

impl DbLock {
    fn acquire(db: &Path) -> Result<DbLock> {
        use std::io::{Read, Seek, Write};
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("{}: cannot open the database lock file", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let who = match owner.trim().parse::<u32>() {
                    Ok(pid) => format!("process {pid}"),
                    Err(_) => "another process".to_string(),
                };
                anyhow::bail!(
                    "{}: database in use by another coordinator ({who} holds {}); \
                     stop it or pass another --db",
                    db.display(),
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e)
                    .with_context(|| format!("{}: cannot lock the database", path.display()));
            }
        }
        // Ours now: record who holds it (best effort; the lock is what counts).
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DbLock { _file: file })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Open (or create) the database at `path`, holding its lock file
    /// (`<path>.lock`) for the store's lifetime: a second coordinator on the same
    /// database is refused with the process that holds it.
    pub fn open(path: &Path) -> Result<Self> {
        let lock = DbLock::acquire(path)?;
        let conn = Connection::open(path)
            .with_context(|| format!("{}: cannot open database", path.display()))?;
        // WAL + NORMAL: a committed transaction survives a process kill (the case we
        // promise); only an OS crash may lose the last few.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA foreign_keys=ON;
             CREATE TABLE IF NOT EXISTS runs(
                 id TEXT PRIMARY KEY, seq INTEGER NOT NULL, name TEXT NOT NULL,
                 scenario TEXT NOT NULL, created_ms INTEGER NOT NULL,
                 cancelled INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER);
             CREATE TABLE IF NOT EXISTS jobs(
                 id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id),
                 ord INTEGER NOT NULL, spec BLOB NOT NULL, state INTEGER NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, agent TEXT NOT NULL DEFAULT '');
             CREATE INDEX IF NOT EXISTS jobs_run ON jobs(run_id, ord);
             CREATE TABLE IF NOT EXISTS attempts(
                 job_id TEXT NOT NULL REFERENCES jobs(id), attempt INTEGER NOT NULL,
                 agent TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER,
                 outcome TEXT, PRIMARY KEY(job_id, attempt));
             CREATE TABLE IF NOT EXISTS results(
                 job_id TEXT PRIMARY KEY REFERENCES jobs(id), result BLOB NOT NULL,
                 agent TEXT NOT NULL, attempt INTEGER NOT NULL, recorded_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS agents(
                 name TEXT PRIMARY KEY, device TEXT NOT NULL, capabilities TEXT NOT NULL,
                 first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,
                 connects INTEGER NOT NULL DEFAULT 1);",
        )
        .with_context(|| format!("{}: cannot initialise the database schema", path.display()))?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn run_exists(&self, id: &str) -> Result<bool> {
        let r = (|| -> Result<bool> {
            Ok(self
                .conn
                .query_row("SELECT 1 FROM runs WHERE id = ?1", [id], |_| Ok(()))
                .optional()?
                .is_some())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    /// Insert a run and all its jobs in one transaction.
    pub fn insert_run(
        &mut self,
        id: &str,
        seq: u64,
        name: &str,
        scenario: &str,
        jobs: &[(JobSpec, JobState)],
    ) -> Result<()> {
        let r = (|| -> Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "INSERT INTO runs(id, seq, name, scenario, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, seq as i64, name, scenario, now_ms()],
            )?;
            {
                let mut st = tx.prepare(
                    "INSERT INTO jobs(id, run_id, ord, spec, state) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for (ord, (spec, state)) in jobs.iter().enumerate() {
                    st.execute(params![
                        spec.id,
                        id,
                        ord as i64,
                        spec.encode_to_vec(),
                        *state as i32
                    ])?;
                }
            }
            tx.commit()?;
            Ok(())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    pub fn record_assign(&mut self, job: &str, attempt: u32, agent: &str) -> Result<()> {
        let r = (|| -> Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "UPDATE jobs SET state = ?2, attempts = ?3, agent = ?4 WHERE id = ?1",
                params![job, JobState::Running as i32, attempt, agent],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO attempts(job_id, attempt, agent, started_ms) VALUES (?1, ?2, ?3, ?4)",
                params![job, attempt, agent, now_ms()],
            )?;
            tx.commit()?;
            Ok(())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    /// An attempt ended without a result (lease lost); the job goes back to `state`.
    pub fn record_lost(
        &mut self,
        job: &str,
        attempt: u32,
        state: JobState,
        why: &str,
    ) -> Result<()> {
        let r = (|| -> Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "UPDATE attempts SET ended_ms = ?3, outcome = ?4 WHERE job_id = ?1 AND attempt = ?2",
                params![job, attempt, now_ms(), format!("lost: {why}")],
            )?;
            tx.execute(
                "UPDATE jobs SET state = ?2 WHERE id = ?1",
                params![job, state as i32],
            )?;
            tx.commit()?;
            Ok(())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    /// Record a job's result. Returns false when the job already had one (the first
    /// result stays; a job that ran twice is still counted once).
    pub fn record_result(&mut self, result: &JobResult, state: JobState) -> Result<bool> {
        let r = (|| -> Result<bool> {
            let tx = self.conn.transaction()?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO results(job_id, result, agent, attempt, recorded_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    result.job_id,
                    result.encode_to_vec(),
                    result.agent,
                    result.attempt,
                    now_ms()
                ],
            )?;
            if inserted == 1 {
                tx.execute(
                    "UPDATE jobs SET state = ?2 WHERE id = ?1",
                    params![result.job_id, state as i32],
                )?;
                tx.execute(
                    "UPDATE attempts SET ended_ms = ?3, outcome = ?4 WHERE job_id = ?1 AND attempt = ?2",
                    params![
                        result.job_id,
                        result.attempt,
                        now_ms(),
                        if result.ok { "ok" } else { "error" }
                    ],
                )?;
            }
            tx.commit()?;
            Ok(inserted == 1)
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    /// Jobs that end without running (cancelled, or a dependency failed).
    pub fn set_states(&mut self, jobs: &[String], state: JobState) -> Result<()> {
        let r = (|| -> Result<()> {
            let tx = self.conn.transaction()?;
            {
                let mut st = tx.prepare("UPDATE jobs SET state = ?2 WHERE id = ?1")?;
                for j in jobs {
                    st.execute(params![j, state as i32])?;
                }
            }
            tx.commit()?;
            Ok(())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    pub fn mark_cancelled(&mut self, run: &str) -> Result<()> {
        let r = (|| -> Result<()> {
            self.conn
                .execute("UPDATE runs SET cancelled = 1 WHERE id = ?1", [run])?;
            Ok(())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    pub fn mark_finished(&mut self, run: &str) -> Result<()> {
        let r = (|| -> Result<()> {
            self.conn.execute(
                "UPDATE runs SET finished_ms = ?2 WHERE id = ?1 AND finished_ms IS NULL",
                params![run, now_ms()],
            )?;
            Ok(())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    pub fn agent_seen(&mut self, name: &str, device: &str, caps: &[String]) -> Result<()> {
        let r = (|| -> Result<()> {
            let t = now_ms();
            self.conn.execute(
                "INSERT INTO agents(name, device, capabilities, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT(name) DO UPDATE SET device = ?2, capabilities = ?3,
                     last_seen_ms = ?4, connects = connects + 1",
                params![name, device, caps.join(","), t],
            )?;
            Ok(())
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }

    /// Every run (oldest first) with its jobs and recorded results.
    pub fn load(&self) -> Result<Vec<(StoredRun, Vec<StoredJob>)>> {
        let r = (|| -> Result<Vec<(StoredRun, Vec<StoredJob>)>> {
            let mut runs = Vec::new();
            let mut st = self
                .conn
                .prepare("SELECT id, name, cancelled FROM runs ORDER BY seq")?;
            let rows = st.query_map([], |r| {
                Ok(StoredRun {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    cancelled: r.get::<_, i64>(2)? != 0,
                })
            })?;
            for run in rows {
                runs.push(run?);
            }
            let mut out = Vec::with_capacity(runs.len());
            let mut st = self.conn.prepare(
                "SELECT j.spec, j.state, j.attempts, j.agent, r.result FROM jobs j
                 LEFT JOIN results r ON r.job_id = j.id WHERE j.run_id = ?1 ORDER BY j.ord",
            )?;
            for run in runs {
                let mut jobs = Vec::new();
                let rows = st.query_map([&run.id], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, i32>(1)?,
                        r.get::<_, u32>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<Vec<u8>>>(4)?,
                    ))
                })?;
                for row in rows {
                    let (spec, state, attempts, agent, result) = row?;
                    let spec =
                        JobSpec::decode(spec.as_slice()).context("corrupt job spec in database")?;
                    let result = match result {
                        Some(b) => Some(
                            JobResult::decode(b.as_slice())
                                .context("corrupt result in database")?,
                        ),
                        None => None,
                    };
                    jobs.push(StoredJob {
                        run_id: run.id.clone(),
                        spec,
                        state: JobState::try_from(state).unwrap_or(JobState::Pending),
                        attempts,
                        agent,
                        result,
                    });
                }
                out.push((run, jobs));
            }
            Ok(out)
        })();
        r.with_context(|| format!("{}: database error", self.path.display()))
    }
}

#[cfg(test)]
impl Store {
    pub fn conn_for_tests(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use super::Store;

    #[test]
    fn one_store_per_database_file() {
        let dir = std::env::temp_dir().join(format!("qf-store-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("c.db");
        let first = Store::open(&db).unwrap();
        let e = format!("{:#}", Store::open(&db).err().expect("second open refused"));
        assert!(
            e.contains("c.db") && e.contains(&format!("process {}", std::process::id())),
            "{e}"
        );
        drop(first);
        // The lock goes with its holder.
        Store::open(&db).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
