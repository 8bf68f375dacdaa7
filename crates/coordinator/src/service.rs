//! The gRPC service: thin wrappers that take the scheduler lock once per event.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use quantfarm_proto::CHUNK_BYTES;
use quantfarm_proto::v1::harness_server::Harness;
use quantfarm_proto::v1::{
    AgentMessage, ArtifactChunk, ArtifactRef, CancelRunRequest, CancelRunResponse,
    CoordinatorMessage, GetRunRequest, ListRunsRequest, ListRunsResponse, Registered, RunStatus,
    SubmitRunRequest, SubmitRunResponse, agent_message, coordinator_message,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::artifacts::ArtifactStore;
use crate::sched::Scheduler;

pub struct Service {
    pub sched: Arc<Mutex<Scheduler>>,
    pub artifacts: Arc<ArtifactStore>,
    pub heartbeat_ms: u32,
    pub max_jobs_per_run: usize,
}

pub fn lock(s: &Mutex<Scheduler>) -> MutexGuard<'_, Scheduler> {
    // A panic while holding the lock would be a bug; the state is still the best we have.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn internal(e: anyhow::Error) -> Status {
    Status::internal(format!("{e:#}"))
}

/// Shortest gap between two `WatchRun` messages.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Harness for Service {
    async fn submit_run(
        &self,
        req: Request<SubmitRunRequest>,
    ) -> Result<Response<SubmitRunResponse>, Status> {
        let r = req.into_inner();
        if r.run_id.is_empty() || r.run_id.len() > 128 {
            return Err(Status::invalid_argument(
                "run id must have 1 to 128 characters",
            ));
        }
        if r.jobs.len() > self.max_jobs_per_run {
            return Err(Status::invalid_argument(format!(
                "{} jobs exceed the limit of {} per run",
                r.jobs.len(),
                self.max_jobs_per_run
            )));
        }
        let created = lock(&self.sched)
            .submit(&r.run_id, &r.name, &r.scenario_yaml, r.jobs)
            .map_err(|e| Status::invalid_argument(format!("{e:#}")))?;
        Ok(Response::new(SubmitRunResponse {
            run_id: r.run_id,
            already_existed: !created,
        }))
    }

    async fn get_run(&self, req: Request<GetRunRequest>) -> Result<Response<RunStatus>, Status> {
        let id = req.into_inner().run_id;
        lock(&self.sched)
            .run_status(&id)
            .map(Response::new)
            .ok_or_else(|| Status::not_found(format!("no run {id}")))
    }

    type WatchRunStream = BoxStream<RunStatus>;

    async fn watch_run(
        &self,
        req: Request<GetRunRequest>,
    ) -> Result<Response<Self::WatchRunStream>, Status> {
        let id = req.into_inner().run_id;
        let (mut changes, first) = {
            let s = lock(&self.sched);
            (s.subscribe(), s.run_status(&id))
        };
        let first = first.ok_or_else(|| Status::not_found(format!("no run {id}")))?;
        let sched = self.sched.clone();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut last = first;
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            while !last.finished {
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return },
                    _ = tx.closed() => return,
                }
                // Progress reports come in bursts: send one status per interval.
                tokio::time::sleep(WATCH_INTERVAL).await;
                changes.mark_unchanged();
                let Some(now) = lock(&sched).run_status(&id) else {
                    return;
                };
                if now != last {
                    if tx.send(Ok(now.clone())).await.is_err() {
                        return;
                    }
                    last = now;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list_runs(
        &self,
        _req: Request<ListRunsRequest>,
    ) -> Result<Response<ListRunsResponse>, Status> {
        Ok(Response::new(ListRunsResponse {
            runs: lock(&self.sched).list_runs(),
        }))
    }

    async fn cancel_run(
        &self,
        req: Request<CancelRunRequest>,
    ) -> Result<Response<CancelRunResponse>, Status> {
        let id = req.into_inner().run_id;
        let n = lock(&self.sched)
            .cancel(&id)
            .map_err(|e| Status::not_found(format!("{e:#}")))?;
        Ok(Response::new(CancelRunResponse {
            cancelled_jobs: n.unwrap_or(0),
            already_finished: n.is_none(),
        }))
    }

    async fn put_artifact(
        &self,
        req: Request<Streaming<ArtifactChunk>>,
    ) -> Result<Response<ArtifactRef>, Status> {
        let mut stream = req.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty artifact upload"))??;
        if let Some(p) = self.artifacts.path(&first.sha256) {
            // Already stored: nothing to transfer again (the digest names the content).
            let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            return Ok(Response::new(ArtifactRef {
                sha256: first.sha256,
                size,
            }));
        }
        let mut up = self
            .artifacts
            .begin(&first.sha256, first.size)
            .map_err(Status::invalid_argument)?;
        up.write(&first.data).map_err(Status::invalid_argument)?;
        while let Some(chunk) = stream.next().await {
            up.write(&chunk?.data).map_err(Status::invalid_argument)?;
        }
        let (sha256, size) = up.finish().map_err(Status::invalid_argument)?;
        Ok(Response::new(ArtifactRef { sha256, size }))
    }

    type GetArtifactStream = BoxStream<ArtifactChunk>;

    async fn get_artifact(
        &self,
        req: Request<ArtifactRef>,
    ) -> Result<Response<Self::GetArtifactStream>, Status> {
        let digest = req.into_inner().sha256;
        let reader = self
            .artifacts
            .read_chunks(&digest, CHUNK_BYTES)
            .map_err(Status::not_found)?;
        let size = reader.size;
        let (tx, rx) = mpsc::channel(4);
        // File reads block; keep them off the async workers.
        tokio::task::spawn_blocking(move || {
            let mut first = true;
            for chunk in reader {
                let item = chunk
                    .map(|data| ArtifactChunk {
                        sha256: if first { digest.clone() } else { String::new() },
                        size: if first { size } else { 0 },
                        data,
                    })
                    .map_err(|e| Status::internal(format!("artifact read: {e}")));
                first = false;
                if tx.blocking_send(item).is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ConnectStream = BoxStream<CoordinatorMessage>;

    async fn connect(
        &self,
        req: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let mut inbound = req.into_inner();
        let first = inbound
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("stream closed before registering"))??;
        let Some(agent_message::Msg::Register(profile)) = first.msg else {
            return Err(Status::invalid_argument(
                "the first message must be a registration",
            ));
        };
        if profile.name.is_empty() || profile.name.len() > 128 {
            return Err(Status::invalid_argument(
                "agent name must have 1 to 128 characters",
            ));
        }
        let mut caps = profile.capabilities.clone();
        if !profile.device.is_empty() && !caps.contains(&profile.device) {
            caps.push(profile.device.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Ok(CoordinatorMessage {
            msg: Some(coordinator_message::Msg::Registered(Registered {
                agent_id: profile.name.clone(),
                heartbeat_ms: self.heartbeat_ms,
            })),
        }))
        .map_err(|_| Status::internal("stream closed"))?;
        let aid = {
            let mut s = lock(&self.sched);
            let aid = s
                .register(
                    &profile.name,
                    &profile.device,
                    caps,
                    profile.slots as usize,
                    tx,
                )
                .map_err(internal)?;
            s.dispatch();
            aid
        };
        let sched = self.sched.clone();
        tokio::spawn(async move {
            let why = loop {
                match inbound.next().await {
                    None => break "stream ended".to_string(),
                    Some(Err(e)) => break format!("stream error: {}", e.message()),
                    Some(Ok(m)) => {
                        let mut s = lock(&sched);
                        match m.msg {
                            Some(agent_message::Msg::Heartbeat(_)) => s.heartbeat(aid),
                            Some(agent_message::Msg::Progress(p)) => {
                                s.heartbeat(aid);
                                s.progress(aid, &p.job_id, p.fraction)
                            }
                            Some(agent_message::Msg::Result(r)) => {
                                s.heartbeat(aid);
                                if let Err(e) = s.result(aid, r) {
                                    eprintln!("coordinator: recording a result failed: {e:#}");
                                }
                            }
                            Some(agent_message::Msg::Register(_)) | None => {}
                        }
                    }
                }
            };
            lock(&sched).disconnect(aid, &why);
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }
}
