//! The scheduler: in-memory job graph and agent table, mirrored to SQLite on every
//! state change.
//!
//! One mutex guards everything; each event (submit, register, result, lease expiry,
//! cancel) takes it once, updates the store, and hands ready jobs to idle agents.
//! Ready jobs are queued per required capability and per run; agents take from runs
//! in round-robin order so one large run cannot starve a small one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use quantfarm_proto::v1::{
    Assignment, Cancel, CoordinatorMessage, JobResult, JobSpec, JobState, JobStatus, RunStatus,
    RunSummary, coordinator_message::Msg,
};
use tokio::sync::mpsc::UnboundedSender;
use tonic::Status;

use crate::store::Store;

pub type AgentTx = UnboundedSender<Result<CoordinatorMessage, Status>>;

struct Job {
    spec: JobSpec,
    run: u64,
    state: JobState,
    attempts: u32,
    max_attempts: u32,
    deps_left: usize,
    dependents: Vec<String>,
    agent: String,
    /// (agent id, attempt, deadline) while running.
    lease: Option<(u64, u32, Instant)>,
    progress: f64,
    result: Option<JobResult>,
}

struct Run {
    id: String,
    name: String,
    jobs: Vec<String>,
    remaining: usize,
    cancelled: bool,
}

struct Agent {
    name: String,
    caps: Vec<String>,
    slots: usize,
    running: HashSet<String>,
    tx: AgentTx,
    last_seen: Instant,
}

pub struct Scheduler {
    store: Store,
    jobs: HashMap<String, Job>,
    runs: BTreeMap<u64, Run>,
    run_ids: HashMap<String, u64>,
    next_run: u64,
    /// capability -> run seq -> ready job ids in submission order.
    ready: HashMap<String, BTreeMap<u64, VecDeque<String>>>,
    /// Last run served, for round-robin across runs.
    cursor: u64,
    agents: HashMap<u64, Agent>,
    idle: BTreeSet<u64>,
    next_agent: u64,
    pub lease_ttl: Duration,
    pub default_attempts: u32,
    /// Bumped by every call that may change a run's status; `WatchRun` streams wait on it.
    changes: tokio::sync::watch::Sender<u64>,
}

fn terminal(s: JobState) -> bool {
    matches!(
        s,
        JobState::Succeeded | JobState::Failed | JobState::Cancelled
    )
}

impl Scheduler {
    /// Rebuild from the store: finished results stay, interrupted attempts are
    /// requeued (their attempt still counts).
    pub fn recover(store: Store, lease_ttl: Duration, default_attempts: u32) -> Result<Self> {
        let mut s = Scheduler {
            store,
            jobs: HashMap::new(),
            runs: BTreeMap::new(),
            run_ids: HashMap::new(),
            next_run: 1,
            ready: HashMap::new(),
            cursor: 0,
            agents: HashMap::new(),
            idle: BTreeSet::new(),
            next_agent: 1,
            lease_ttl,
            default_attempts,
            changes: tokio::sync::watch::Sender::new(0),
        };
        for (run, jobs) in s.store.load()? {
            let seq = s.next_run;
            s.next_run += 1;
            let specs: Vec<_> = jobs.iter().map(|j| j.spec.clone()).collect();
            s.add_run_memory(seq, &run.id, &run.name, &specs);
            s.runs.get_mut(&seq).expect("just added").cancelled = run.cancelled;
            for sj in jobs {
                let job = s.jobs.get_mut(&sj.spec.id).expect("just added");
                job.attempts = sj.attempts;
                job.agent = sj.agent;
                if let Some(r) = sj.result {
                    job.state = if r.ok {
                        JobState::Succeeded
                    } else {
                        JobState::Failed
                    };
                    job.result = Some(r);
                } else if terminal(sj.state) {
                    job.state = sj.state;
                }
            }
            // Second pass: dependency counts and readiness from the recovered states.
            let ids = s.runs[&seq].jobs.clone();
            let mut remaining = 0;
            let mut newly_failed = Vec::new();
            for id in &ids {
                let job = &s.jobs[id];
                if terminal(job.state) {
                    continue;
                }
                remaining += 1;
                let mut left = 0;
                let mut dep_failed = false;
                for d in &job.spec.depends_on {
                    match s.jobs.get(d).map(|j| j.state) {
                        Some(JobState::Succeeded) => {}
                        Some(JobState::Failed | JobState::Cancelled) => dep_failed = true,
                        _ => left += 1,
                    }
                }
                if dep_failed {
                    newly_failed.push(id.clone());
                }
                s.jobs.get_mut(id).expect("exists").deps_left = left;
            }
            s.runs.get_mut(&seq).expect("exists").remaining = remaining;
            for id in newly_failed {
                s.fail_without_running(&id, "a dependency failed")?;
            }
            for id in &ids {
                let job = &s.jobs[id];
                if !terminal(job.state) {
                    if job.deps_left == 0 {
                        s.make_ready(id);
                    } else {
                        s.jobs.get_mut(id).expect("exists").state = JobState::Pending;
                    }
                }
            }
            if s.runs[&seq].remaining == 0 {
                s.store.mark_finished(&run.id)?;
            }
        }
        Ok(s)
    }

    fn add_run_memory(&mut self, seq: u64, id: &str, name: &str, specs: &[JobSpec]) {
        for spec in specs {
            self.jobs.insert(
                spec.id.clone(),
                Job {
                    spec: spec.clone(),
                    run: seq,
                    state: JobState::Pending,
                    attempts: 0,
                    max_attempts: if spec.max_attempts == 0 {
                        self.default_attempts
                    } else {
                        spec.max_attempts
                    },
                    deps_left: spec.depends_on.len(),
                    dependents: Vec::new(),
                    agent: String::new(),
                    lease: None,
                    progress: 0.0,
                    result: None,
                },
            );
        }
        for spec in specs {
            for d in &spec.depends_on {
                if let Some(dep) = self.jobs.get_mut(d) {
                    dep.dependents.push(spec.id.clone());
                }
            }
        }
        self.runs.insert(
            seq,
            Run {
                id: id.to_string(),
                name: name.to_string(),
                jobs: specs.iter().map(|s| s.id.clone()).collect(),
                remaining: specs.len(),
                cancelled: false,
            },
        );
        self.run_ids.insert(id.to_string(), seq);
    }

    /// Add a run. Returns false (and changes nothing) when the id already exists, so a
    /// client may resubmit after losing the coordinator.
    pub fn submit(
        &mut self,
        run_id: &str,
        name: &str,
        scenario: &str,
        specs: Vec<JobSpec>,
    ) -> Result<bool> {
        self.changed();
        if self.run_ids.contains_key(run_id) || self.store.run_exists(run_id)? {
            return Ok(false);
        }
        validate_dag(&specs, &self.jobs)?;
        let seq = self.next_run;
        self.next_run += 1;
        let rows: Vec<_> = specs
            .iter()
            .map(|s| {
                let st = if s.depends_on.is_empty() {
                    JobState::Ready
                } else {
                    JobState::Pending
                };
                (s.clone(), st)
            })
            .collect();
        self.store.insert_run(run_id, seq, name, scenario, &rows)?;
        self.add_run_memory(seq, run_id, name, &specs);
        for s in &specs {
            if s.depends_on.is_empty() {
                self.make_ready(&s.id);
            }
        }
        if specs.is_empty() {
            self.store.mark_finished(run_id)?;
        }
        self.dispatch();
        Ok(true)
    }

    fn make_ready(&mut self, id: &str) {
        let job = self.jobs.get_mut(id).expect("job exists");
        job.state = JobState::Ready;
        job.lease = None;
        job.progress = 0.0;
        self.ready
            .entry(job.spec.requires.clone())
            .or_default()
            .entry(job.run)
            .or_default()
            .push_back(id.to_string());
    }

    pub fn register(
        &mut self,
        name: &str,
        device: &str,
        caps: Vec<String>,
        slots: usize,
        tx: AgentTx,
    ) -> Result<u64> {
        // A reconnecting agent replaces its stale connection at once instead of
        // waiting for the lease timeout.
        let stale: Vec<u64> = self
            .agents
            .iter()
            .filter(|(_, a)| a.name == name)
            .map(|(&id, _)| id)
            .collect();
        for id in stale {
            self.disconnect(id, "agent reconnected");
        }
        self.store.agent_seen(name, device, &caps)?;
        let id = self.next_agent;
        self.next_agent += 1;
        self.agents.insert(
            id,
            Agent {
                name: name.to_string(),
                caps,
                slots: slots.max(1),
                running: HashSet::new(),
                tx,
                last_seen: Instant::now(),
            },
        );
        self.idle.insert(id);
        Ok(id)
    }

    /// Hand ready jobs to agents with free slots.
    pub fn dispatch(&mut self) {
        self.changed();
        let idle: Vec<u64> = self.idle.iter().copied().collect();
        for aid in idle {
            if self.ready.is_empty() {
                return;
            }
            while let Some(agent) = self.agents.get(&aid) {
                if agent.running.len() >= agent.slots {
                    self.idle.remove(&aid);
                    break;
                }
                let Some(job_id) = self.pick(aid) else { break };
                if let Err(e) = self.assign(aid, &job_id) {
                    eprintln!("coordinator: cannot assign {job_id}: {e:#}");
                    break;
                }
            }
        }
    }

    fn pick(&mut self, aid: u64) -> Option<String> {
        let caps = self.agents.get(&aid)?.caps.clone();
        for cap in &caps {
            // Queues are removed when they empty, so a present map has work.
            while let Some(by_run) = self.ready.get_mut(cap) {
                // Next run after the cursor that has work for this capability, wrapping.
                let seq = by_run
                    .range(self.cursor + 1..)
                    .next()
                    .or_else(|| by_run.iter().next())
                    .map(|(&k, _)| k)?;
                let q = by_run.get_mut(&seq)?;
                let front = q.pop_front();
                if q.is_empty() {
                    by_run.remove(&seq);
                }
                if by_run.is_empty() {
                    self.ready.remove(cap);
                }
                // Cancelled jobs are dropped lazily from the queues.
                if let Some(id) = front
                    && self.jobs.get(&id).map(|j| j.state) == Some(JobState::Ready)
                {
                    self.cursor = seq;
                    return Some(id);
                }
            }
        }
        None
    }

    fn assign(&mut self, aid: u64, job_id: &str) -> Result<()> {
        let input_digest = {
            let job = &self.jobs[job_id];
            if !job.spec.model_digest.is_empty() {
                job.spec.model_digest.clone()
            } else if !job.spec.input_from.is_empty() {
                self.jobs
                    .get(&job.spec.input_from)
                    .and_then(|d| d.result.as_ref())
                    .map(|r| r.output_digest.clone())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        let ttl = self.lease_ttl;
        let agent = self.agents.get_mut(&aid).expect("agent exists");
        let job = self.jobs.get_mut(job_id).expect("job exists");
        job.attempts += 1;
        job.state = JobState::Running;
        job.agent = agent.name.clone();
        job.lease = Some((aid, job.attempts, Instant::now() + ttl));
        job.progress = 0.0;
        agent.running.insert(job_id.to_string());
        let msg = CoordinatorMessage {
            msg: Some(Msg::Assign(Assignment {
                spec: Some(job.spec.clone()),
                attempt: job.attempts,
                input_digest,
            })),
        };
        let attempt = job.attempts;
        let name = agent.name.clone();
        if agent.tx.send(Ok(msg)).is_err() {
            // The stream is gone; the disconnect handler requeues the job.
            self.disconnect(aid, "stream closed");
            return Ok(());
        }
        self.store.record_assign(job_id, attempt, &name)?;
        Ok(())
    }

    /// The agent is alive: extend its leases.
    pub fn heartbeat(&mut self, aid: u64) {
        let now = Instant::now();
        let deadline = now + self.lease_ttl;
        if let Some(a) = self.agents.get_mut(&aid) {
            a.last_seen = now;
            for j in &a.running {
                if let Some(job) = self.jobs.get_mut(j)
                    && let Some(l) = job.lease.as_mut()
                    && l.0 == aid
                {
                    l.2 = deadline;
                }
            }
        }
    }

    pub fn progress(&mut self, aid: u64, job_id: &str, fraction: f64) {
        self.changed();
        if let Some(job) = self.jobs.get_mut(job_id)
            && job.lease.map(|l| l.0) == Some(aid)
        {
            job.progress = fraction.clamp(0.0, 1.0);
        }
    }

    /// A result from any agent. The first result for a job id is recorded; later ones
    /// (a job that ran twice) are dropped.
    pub fn result(&mut self, aid: u64, mut r: JobResult) -> Result<()> {
        self.changed();
        if let Some(a) = self.agents.get(&aid) {
            r.agent = a.name.clone();
        }
        if let Some(a) = self.agents.get_mut(&aid)
            && a.running.remove(&r.job_id)
        {
            self.idle.insert(aid);
        }
        let Some(job) = self.jobs.get(&r.job_id) else {
            return Ok(());
        };
        if terminal(job.state) {
            self.dispatch();
            return Ok(());
        }
        if !r.ok && r.retryable {
            // Only the attempt that holds the lease may give it back.
            if job.lease.map(|l| l.0) == Some(aid) {
                let why = format!("agent {}: {}", r.agent, r.error);
                self.lease_lost(&r.job_id.clone(), aid, &why)?;
            }
            self.dispatch();
            return Ok(());
        }
        let state = if r.ok {
            JobState::Succeeded
        } else {
            JobState::Failed
        };
        if !self.store.record_result(&r, state)? {
            self.dispatch();
            return Ok(());
        }
        // Another agent may still hold a lease on this job (it ran twice): stop it.
        if let Some((holder, _, _)) = job.lease
            && holder != aid
            && let Some(a) = self.agents.get_mut(&holder)
        {
            a.running.remove(&r.job_id);
            let _ = a.tx.send(Ok(CoordinatorMessage {
                msg: Some(Msg::Cancel(Cancel {
                    job_id: r.job_id.clone(),
                })),
            }));
            self.idle.insert(holder);
        }
        let id = r.job_id.clone();
        let job = self.jobs.get_mut(&id).expect("exists");
        job.state = state;
        job.lease = None;
        job.progress = 1.0;
        job.result = Some(r);
        let dependents = job.dependents.clone();
        let run = job.run;
        self.finish_one(run)?;
        for d in dependents {
            if state == JobState::Succeeded {
                let dj = self.jobs.get_mut(&d).expect("dependent exists");
                dj.deps_left = dj.deps_left.saturating_sub(1);
                if dj.deps_left == 0 && dj.state == JobState::Pending {
                    self.make_ready(&d);
                    self.store
                        .set_states(std::slice::from_ref(&d), JobState::Ready)?;
                }
            } else {
                self.fail_without_running(&d, "a dependency failed")?;
            }
        }
        self.dispatch();
        Ok(())
    }

    fn finish_one(&mut self, run: u64) -> Result<()> {
        let r = self.runs.get_mut(&run).expect("run exists");
        r.remaining = r.remaining.saturating_sub(1);
        if r.remaining == 0 {
            let id = r.id.clone();
            self.store.mark_finished(&id)?;
        }
        Ok(())
    }

    /// Fail a job (and its dependents) that never ran.
    fn fail_without_running(&mut self, id: &str, why: &str) -> Result<()> {
        let Some(job) = self.jobs.get_mut(id) else {
            return Ok(());
        };
        if terminal(job.state) {
            return Ok(());
        }
        job.state = JobState::Failed;
        job.result = Some(JobResult {
            job_id: id.to_string(),
            ok: false,
            error: why.to_string(),
            ..Default::default()
        });
        let run = job.run;
        let dependents = job.dependents.clone();
        self.store.set_states(&[id.to_string()], JobState::Failed)?;
        self.finish_one(run)?;
        for d in dependents {
            self.fail_without_running(&d, why)?;
        }
        Ok(())
    }

    /// The agent's stream ended (or it was replaced): requeue what it held.
    pub fn disconnect(&mut self, aid: u64, why: &str) {
        self.changed();
        let Some(agent) = self.agents.remove(&aid) else {
            return;
        };
        self.idle.remove(&aid);
        for j in agent.running {
            if let Err(e) = self.lease_lost(&j, aid, why) {
                eprintln!("coordinator: {j}: {e:#}");
            }
        }
        self.dispatch();
    }

    fn lease_lost(&mut self, id: &str, aid: u64, why: &str) -> Result<()> {
        let Some(job) = self.jobs.get_mut(id) else {
            return Ok(());
        };
        let Some((holder, attempt, _)) = job.lease else {
            return Ok(());
        };
        if holder != aid || terminal(job.state) {
            return Ok(());
        }
        job.lease = None;
        if job.attempts >= job.max_attempts {
            let msg = format!("lease lost on {} attempts (last: {why})", job.attempts);
            self.store.record_lost(id, attempt, JobState::Failed, why)?;
            let job = self.jobs.get_mut(id).expect("exists");
            job.state = JobState::Ready; // so fail_without_running accepts it
            self.fail_without_running(id, &msg)?;
        } else {
            self.store.record_lost(id, attempt, JobState::Ready, why)?;
            self.make_ready(id);
        }
        Ok(())
    }

    /// Drop agents that went silent and expire leases that were not renewed.
    pub fn reap(&mut self) {
        self.changed();
        let now = Instant::now();
        let silent: Vec<u64> = self
            .agents
            .iter()
            .filter(|(_, a)| a.last_seen + self.lease_ttl < now)
            .map(|(&id, _)| id)
            .collect();
        for aid in silent {
            // Dropping its sender ends the agent's stream; it will dial again.
            self.disconnect(aid, "agent silent");
        }
        let expired: Vec<(String, u64)> = self
            .jobs
            .iter()
            .filter_map(|(id, j)| match j.lease {
                Some((aid, _, deadline)) if deadline < now && j.state == JobState::Running => {
                    Some((id.clone(), aid))
                }
                _ => None,
            })
            .collect();
        for (id, aid) in expired {
            if let Some(a) = self.agents.get_mut(&aid) {
                a.running.remove(&id);
                self.idle.insert(aid);
            }
            if let Err(e) = self.lease_lost(&id, aid, "lease expired") {
                eprintln!("coordinator: {id}: {e:#}");
            }
        }
        self.dispatch();
    }

    /// Cancel a run: every job not yet finished ends `Cancelled`, with a result that
    /// says so, and its agent is told to stop. A finished run is left as it is
    /// (`Ok(None)`): cancelling it would misreport how it ended.
    pub fn cancel(&mut self, run_id: &str) -> Result<Option<u32>> {
        self.changed();
        let Some(&seq) = self.run_ids.get(run_id) else {
            bail!("no run {run_id}");
        };
        let run = self.runs.get_mut(&seq).expect("indexed");
        if run.remaining == 0 {
            return Ok(None);
        }
        run.cancelled = true;
        let ids = run.jobs.clone();
        self.store.mark_cancelled(run_id)?;
        let mut n = 0;
        for id in ids {
            let job = self.jobs.get_mut(&id).expect("exists");
            if terminal(job.state) {
                continue;
            }
            if let Some((aid, _, _)) = job.lease.take()
                && let Some(a) = self.agents.get_mut(&aid)
            {
                a.running.remove(&id);
                let _ = a.tx.send(Ok(CoordinatorMessage {
                    msg: Some(Msg::Cancel(Cancel { job_id: id.clone() })),
                }));
                self.idle.insert(aid);
            }
            let was = job.state;
            job.state = JobState::Cancelled;
            let r = JobResult {
                job_id: id.clone(),
                ok: false,
                error: format!(
                    "cancelled: the run was cancelled while the job was {}",
                    state_word(was)
                ),
                agent: job.agent.clone(),
                attempt: job.attempts,
                ..Default::default()
            };
            job.result = Some(r.clone());
            // The cancellation is the job's recorded outcome; a late result from an
            // agent that had not stopped yet is dropped like any second result.
            self.store.record_result(&r, JobState::Cancelled)?;
            n += 1;
        }
        let run = self.runs.get_mut(&seq).expect("indexed");
        run.remaining = 0;
        self.store.mark_finished(run_id)?;
        self.dispatch();
        Ok(Some(n))
    }

    /// Tell status watchers to look again. Called on entry to every mutating call:
    /// watchers read only after taking the lock the caller holds, so they see the
    /// change.
    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that wakes after any call that may have changed some run's status.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn run_status(&self, run_id: &str) -> Option<RunStatus> {
        let run = &self.runs[self.run_ids.get(run_id)?];
        Some(RunStatus {
            run_id: run.id.clone(),
            name: run.name.clone(),
            finished: run.remaining == 0,
            cancelled: run.cancelled,
            jobs: run
                .jobs
                .iter()
                .map(|id| {
                    let j = &self.jobs[id];
                    JobStatus {
                        spec: Some(j.spec.clone()),
                        state: j.state as i32,
                        attempts: j.attempts,
                        agent: j.agent.clone(),
                        progress: j.progress,
                        result: j.result.clone(),
                    }
                })
                .collect(),
        })
    }

    pub fn list_runs(&self) -> Vec<RunSummary> {
        self.runs
            .values()
            .map(|r| {
                let (mut done, mut failed, mut cancelled) = (0, 0, 0);
                for id in &r.jobs {
                    match self.jobs[id].state {
                        JobState::Succeeded => done += 1,
                        JobState::Failed => failed += 1,
                        JobState::Cancelled => cancelled += 1,
                        _ => {}
                    }
                }
                RunSummary {
                    run_id: r.id.clone(),
                    name: r.name.clone(),
                    finished: r.remaining == 0,
                    jobs: r.jobs.len() as u32,
                    done,
                    failed,
                    cancelled,
                }
            })
            .collect()
    }
}

/// A job state in a sentence ("... while the job was running").
fn state_word(s: JobState) -> &'static str {
    match s {
        JobState::Pending => "waiting for its dependencies",
        JobState::Ready => "waiting for an agent",
        JobState::Running => "running",
        _ => "unfinished",
    }
}

/// Job ids unique (also against existing runs), dependencies known and acyclic.
fn validate_dag(specs: &[JobSpec], existing: &HashMap<String, Job>) -> Result<()> {
    let mut ids = HashSet::new();
    for s in specs {
        if s.id.is_empty() || s.id.len() > 256 {
            bail!("job ids must have 1 to 256 characters");
        }
        if existing.contains_key(&s.id) || !ids.insert(s.id.as_str()) {
            bail!("duplicate job id {}", s.id);
        }
        if s.requires.is_empty() {
            bail!("job {} names no required capability", s.id);
        }
    }
    for s in specs {
        for d in s
            .depends_on
            .iter()
            .chain(std::iter::once(&s.input_from).filter(|x| !x.is_empty()))
        {
            if !ids.contains(d.as_str()) {
                bail!("job {} depends on unknown job {d}", s.id);
            }
        }
        if !s.input_from.is_empty() && !s.depends_on.contains(&s.input_from) {
            bail!(
                "job {} takes its input from {} but does not depend on it",
                s.id,
                s.input_from
            );
        }
    }
    // Kahn's algorithm: every job must be reachable in topological order.
    let index: HashMap<&str, usize> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut indeg: Vec<usize> = specs.iter().map(|s| s.depends_on.len()).collect();
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
    for (i, s) in specs.iter().enumerate() {
        for d in &s.depends_on {
            out[index[d.as_str()]].push(i);
        }
    }
    let mut queue: Vec<usize> = (0..specs.len()).filter(|&i| indeg[i] == 0).collect();
    let mut seen = 0;
    while let Some(i) = queue.pop() {
        seen += 1;
        for &k in &out[i] {
            indeg[k] -= 1;
            if indeg[k] == 0 {
                queue.push(k);
            }
        }
    }
    if seen != specs.len() {
        bail!("job dependencies form a cycle");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use quantfarm_proto::v1::coordinator_message::Msg;
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    type Rx = UnboundedReceiver<Result<CoordinatorMessage, Status>>;

    fn sched(path: &std::path::Path) -> Scheduler {
        Scheduler::recover(Store::open(path).unwrap(), Duration::from_secs(60), 2).unwrap()
    }

    fn job(id: &str, requires: &str, deps: &[&str]) -> JobSpec {
        JobSpec {
            id: id.into(),
            task: Some(quantfarm_proto::v1::job_spec::Task::Synthetic(
                Default::default(),
            )),
            requires: requires.into(),
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    fn agent(s: &mut Scheduler, name: &str, caps: &[&str]) -> (u64, Rx) {
        let (tx, rx) = unbounded_channel();
        let caps = caps.iter().map(|c| c.to_string()).collect();
        let id = s.register(name, "dev", caps, 1, tx).unwrap();
        s.dispatch();
        (id, rx)
    }

    fn assigned(rx: &mut Rx) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(Ok(m)) = rx.try_recv() {
            if let Some(Msg::Assign(a)) = m.msg {
                out.push(a.spec.unwrap().id);
            }
        }
        out
    }

    fn ok(id: &str) -> JobResult {
        JobResult {
            job_id: id.into(),
            ok: true,
            ..Default::default()
        }
    }

    fn state(s: &Scheduler, id: &str) -> JobState {
        s.jobs[id].state
    }

    #[test]
    fn runs_share_an_agent_round_robin() {
        let dir = tempfile_dir("rr");
        let mut s = sched(&dir.join("db"));
        let big: Vec<_> = (0..10)
            .map(|i| job(&format!("big/{i}"), "cpu", &[]))
            .collect();
        s.submit("big", "big", "", big).unwrap();
        s.submit(
            "small",
            "small",
            "",
            vec![job("small/0", "cpu", &[]), job("small/1", "cpu", &[])],
        )
        .unwrap();
        let (a, mut rx) = agent(&mut s, "a", &["cpu"]);
        let mut order = Vec::new();
        for _ in 0..12 {
            let got = assigned(&mut rx);
            assert_eq!(got.len(), 1);
            order.push(got[0].clone());
            s.result(a, ok(&got[0])).unwrap();
        }
        let pos = |id: &str| order.iter().position(|x| x == id).unwrap();
        assert!(pos("small/0") <= 2 && pos("small/1") <= 4, "{order:?}");
        assert!(s.run_status("big").unwrap().finished);
        assert!(s.run_status("small").unwrap().finished);
    }

    #[test]
    fn capabilities_and_dependencies_gate_dispatch() {
        let dir = tempfile_dir("deps");
        let mut s = sched(&dir.join("db"));
        let mut b = job("r/b", "tpu", &["r/a"]);
        b.input_from = "r/a".into();
        s.submit("r", "r", "", vec![job("r/a", "optimize", &[]), b])
            .unwrap();
        let (tpu, mut tpu_rx) = agent(&mut s, "tpu", &["tpu"]);
        assert!(
            assigned(&mut tpu_rx).is_empty(),
            "wrong capability or unmet dependency"
        );
        let (opt, mut opt_rx) = agent(&mut s, "opt", &["optimize"]);
        assert_eq!(assigned(&mut opt_rx), ["r/a"]);
        assert_eq!(state(&s, "r/b"), JobState::Pending);
        let mut r = ok("r/a");
        r.output_digest = "d".repeat(64);
        s.result(opt, r).unwrap();
        // The dependent gets the producer's output as its input.
        let m = tpu_rx.try_recv().unwrap().unwrap();
        let Some(Msg::Assign(a)) = m.msg else {
            panic!("{m:?}")
        };
        assert_eq!(a.input_digest, "d".repeat(64));
        s.result(tpu, ok("r/b")).unwrap();
        assert!(s.run_status("r").unwrap().finished);
    }

    #[test]
    fn failed_dependency_fails_dependents() {
        let dir = tempfile_dir("faildep");
        let mut s = sched(&dir.join("db"));
        s.submit(
            "r",
            "r",
            "",
            vec![job("r/a", "cpu", &[]), job("r/b", "cpu", &["r/a"])],
        )
        .unwrap();
        let (a, _rx) = agent(&mut s, "a", &["cpu"]);
        let mut r = ok("r/a");
        r.ok = false;
        r.error = "boom".into();
        s.result(a, r).unwrap();
        assert_eq!(state(&s, "r/b"), JobState::Failed);
        assert!(s.run_status("r").unwrap().finished);
    }

    #[test]
    fn lost_leases_retry_then_fail_and_results_count_once() {
        let dir = tempfile_dir("retry");
        let mut s = sched(&dir.join("db"));
        s.submit(
            "r",
            "r",
            "",
            vec![job("r/x", "gpu", &[]), job("r/y", "cpu", &[])],
        )
        .unwrap();
        // r/x: lost twice (max 2 attempts) -> failed.
        let (a1, mut rx1) = agent(&mut s, "a1", &["gpu"]);
        assert_eq!(assigned(&mut rx1), ["r/x"]);
        s.disconnect(a1, "killed");
        let (a2, mut rx2) = agent(&mut s, "a2", &["gpu"]);
        assert_eq!(assigned(&mut rx2), ["r/x"]);
        s.disconnect(a2, "killed");
        assert_eq!(state(&s, "r/x"), JobState::Failed);
        // r/y runs on a3, its lease is lost, it runs again on a4; the late result from
        // a3 arrives first and is the one recorded; a4 is told to stop.
        let (a3, mut rx3) = agent(&mut s, "a3", &["cpu"]);
        assert_eq!(assigned(&mut rx3), ["r/y"]);
        // a3 goes silent: reaping drops it and requeues its job.
        s.agents.get_mut(&a3).unwrap().last_seen = Instant::now() - Duration::from_secs(61);
        s.reap();
        assert!(!s.agents.contains_key(&a3));
        assert_eq!(state(&s, "r/y"), JobState::Ready);
        let (a4, mut rx4) = agent(&mut s, "a4", &["cpu"]);
        assert_eq!(assigned(&mut rx4), ["r/y"]);
        let mut late = ok("r/y");
        late.size_bytes = Some(1);
        s.result(a3, late).unwrap();
        let mut second = ok("r/y");
        second.size_bytes = Some(2);
        let m = rx4.try_recv().unwrap().unwrap();
        assert!(
            matches!(m.msg, Some(Msg::Cancel(_))),
            "a4 is told to stop: {m:?}"
        );
        s.result(a4, second).unwrap();
        assert_eq!(s.jobs["r/y"].result.as_ref().unwrap().size_bytes, Some(1));
        let n: i64 = s
            .store
            .conn_for_tests()
            .query_row("SELECT COUNT(*) FROM results", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert!(s.run_status("r").unwrap().finished);
    }

    #[test]
    fn retryable_failure_requeues() {
        let dir = tempfile_dir("retryable");
        let mut s = sched(&dir.join("db"));
        s.submit("r", "r", "", vec![job("r/x", "cpu", &[])])
            .unwrap();
        let (a, mut rx) = agent(&mut s, "a", &["cpu"]);
        assert_eq!(assigned(&mut rx), ["r/x"]);
        let mut r = ok("r/x");
        r.ok = false;
        r.retryable = true;
        s.result(a, r).unwrap();
        assert_eq!(assigned(&mut rx), ["r/x"]);
        s.result(a, ok("r/x")).unwrap();
        assert_eq!(state(&s, "r/x"), JobState::Succeeded);
    }

    #[test]
    fn restart_keeps_results_and_requeues_the_rest() {
        let dir = tempfile_dir("recover");
        let db = dir.join("db");
        {
            let mut s = sched(&db);
            s.submit(
                "r",
                "r",
                "",
                vec![
                    job("r/a", "cpu", &[]),
                    job("r/b", "cpu", &["r/a"]),
                    job("r/c", "cpu", &[]),
                ],
            )
            .unwrap();
            let (a, mut rx) = agent(&mut s, "a", &["cpu"]);
            let first = assigned(&mut rx);
            assert_eq!(first, ["r/a"]);
            s.result(a, ok("r/a")).unwrap();
            // r/b or r/c is now running; the process dies here.
            assert_eq!(assigned(&mut rx).len(), 1);
        }
        let mut s = sched(&db);
        assert_eq!(state(&s, "r/a"), JobState::Succeeded);
        assert_eq!(s.jobs["r/a"].attempts, 1);
        assert_eq!(state(&s, "r/b"), JobState::Ready);
        assert_eq!(state(&s, "r/c"), JobState::Ready);
        let (a, mut rx) = agent(&mut s, "a", &["cpu"]);
        for _ in 0..2 {
            let got = assigned(&mut rx);
            assert_eq!(got.len(), 1);
            s.result(a, ok(&got[0])).unwrap();
        }
        assert!(s.run_status("r").unwrap().finished);
        // Resubmitting the same run id is a no-op.
        assert!(
            !s.submit("r", "r", "", vec![job("r/z", "cpu", &[])])
                .unwrap()
        );
    }

    #[test]
    fn cancel_stops_running_jobs() {
        let dir = tempfile_dir("cancel");
        let mut s = sched(&dir.join("db"));
        s.submit(
            "r",
            "r",
            "",
            vec![job("r/a", "cpu", &[]), job("r/b", "cpu", &[])],
        )
        .unwrap();
        let (a, mut rx) = agent(&mut s, "a", &["cpu"]);
        assert_eq!(assigned(&mut rx), ["r/a"]);
        assert_eq!(s.cancel("r").unwrap(), Some(2));
        let m = rx.try_recv().unwrap().unwrap();
        assert!(matches!(m.msg, Some(Msg::Cancel(_))), "{m:?}");
        // The stopped job's late result changes nothing.
        s.result(a, ok("r/a")).unwrap();
        assert_eq!(state(&s, "r/a"), JobState::Cancelled);
        let st = s.run_status("r").unwrap();
        assert!(st.finished && st.cancelled);
        // Each cancelled job says why, counted as cancelled (not failed).
        let reasons: Vec<String> = st
            .jobs
            .iter()
            .map(|j| j.result.as_ref().unwrap().error.clone())
            .collect();
        assert!(reasons[0].contains("cancelled") && reasons[0].contains("running"));
        assert!(reasons[1].contains("waiting for an agent"), "{reasons:?}");
        let summary = &s.list_runs()[0];
        assert_eq!((summary.failed, summary.cancelled), (0, 2));
    }

    #[test]
    fn cancelling_a_finished_run_changes_nothing() {
        let dir = tempfile_dir("cancel-finished");
        let mut s = sched(&dir.join("db"));
        s.submit("r", "r", "", vec![job("r/a", "cpu", &[])])
            .unwrap();
        let (a, mut rx) = agent(&mut s, "a", &["cpu"]);
        assert_eq!(assigned(&mut rx), ["r/a"]);
        s.result(a, ok("r/a")).unwrap();
        assert!(s.run_status("r").unwrap().finished);
        assert_eq!(s.cancel("r").unwrap(), None);
        let st = s.run_status("r").unwrap();
        assert!(!st.cancelled, "a finished run is not marked cancelled");
        assert_eq!(state(&s, "r/a"), JobState::Succeeded);
        // Also after a restart from the database.
        drop(s);
        let s = sched(&dir.join("db"));
        assert!(!s.run_status("r").unwrap().cancelled);
    }

    #[test]
    fn invalid_dags_are_rejected() {
        let dir = tempfile_dir("dag");
        let mut s = sched(&dir.join("db"));
        let cyc = vec![job("a", "cpu", &["b"]), job("b", "cpu", &["a"])];
        assert!(
            s.submit("r1", "r", "", cyc)
                .unwrap_err()
                .to_string()
                .contains("cycle")
        );
        let unknown = vec![job("a", "cpu", &["nope"])];
        assert!(s.submit("r2", "r", "", unknown).is_err());
        let dup = vec![job("a", "cpu", &[]), job("a", "cpu", &[])];
        assert!(s.submit("r3", "r", "", dup).is_err());
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("qf-sched-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
