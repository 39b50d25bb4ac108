//! Micro-batching: requests to the same encoder that arrive while it is busy run together in
//! one padded forward pass.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use candle_core::{Tensor, D};
use tokio::sync::oneshot;

use crate::error::{Result, WorkerError};
use crate::limits::ComputeSlots;
use crate::models::encoder::Encoder;

/// Jobs waiting per model before new ones are refused with 503.
const QUEUE_DEPTH: usize = 256;

struct Job {
    seqs: Vec<Vec<u32>>,
    reply: oneshot::Sender<Result<Vec<Tensor>>>,
}

pub struct EncodeQueue {
    tx: SyncSender<Job>,
}

impl EncodeQueue {
    /// Starts the model's compute thread; it ends when the queue is dropped (model evicted).
    pub fn start(encoder: Encoder, max_batch: usize, compute: Arc<ComputeSlots>) -> EncodeQueue {
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let spawned = std::thread::Builder::new().name("encoder".into()).spawn(move || serve(encoder, rx, max_batch.max(1), compute));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start an encoder thread");
        }
        EncodeQueue { tx }
    }

    /// Last hidden states of each token sequence, `(tokens, hidden)` each.
    pub async fn run(&self, seqs: Vec<Vec<u32>>, timeout: Duration) -> Result<Vec<Tensor>> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { seqs, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(WorkerError::Overloaded("too many requests are queued for this model; retry shortly".into()))
            }
            Err(TrySendError::Disconnected(_)) => return Err(WorkerError::Internal("the model's compute thread stopped".into())),
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(WorkerError::Internal("the model's compute thread stopped".into())),
            Err(_) => Err(WorkerError::Timeout(timeout.as_secs_f64())),
        }
    }
}

fn serve(encoder: Encoder, rx: Receiver<Job>, max_batch: usize, compute: Arc<ComputeSlots>) {
    while let Ok(first) = rx.recv() {
        // Everything already waiting joins this round.
        let mut jobs = vec![first];
        while let Ok(job) = rx.try_recv() {
            jobs.push(job);
        }
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let seqs: Vec<&Vec<u32>> = jobs.iter().flat_map(|j| j.seqs.iter()).collect();
        let outputs = compute.run(|| forward_all(&encoder, &seqs, max_batch));
        match outputs {
            Ok(mut outputs) => {
                for job in jobs {
                    let rest = outputs.split_off(job.seqs.len());
                    let _ = job.reply.send(Ok(outputs));
                    outputs = rest;
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(WorkerError::Internal(e.to_string())));
                }
            }
        }
    }
}

/// Sorts by length so each padded chunk wastes little, runs chunks of `max_batch`, and returns
/// the outputs in input order.
fn forward_all(encoder: &Encoder, seqs: &[&Vec<u32>], max_batch: usize) -> Result<Vec<Tensor>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| seqs[i].len());
    let mut out: Vec<Option<Tensor>> = vec![None; seqs.len()];
    for chunk in order.chunks(max_batch) {
        let longest = chunk.iter().map(|&i| seqs[i].len()).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(chunk.len() * longest);
        let mut mask = Vec::with_capacity(chunk.len() * longest);
        for &i in chunk {
            let s = seqs[i];
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(encoder.pad_id, longest - s.len()));
            mask.extend(std::iter::repeat_n(1u32, s.len()));
            mask.extend(std::iter::repeat_n(0u32, longest - s.len()));
        }
        let ids = Tensor::from_vec(ids, (chunk.len(), longest), &encoder.device)?;
        let mask = Tensor::from_vec(mask, (chunk.len(), longest), &encoder.device)?;
        let hidden = encoder.forward(&ids, &mask)?;
        for (row, &i) in chunk.iter().enumerate() {
            out[i] = Some(hidden.get(row)?.narrow(D::Minus2, 0, seqs[i].len())?);
        }
    }
    out.into_iter().map(|t| t.ok_or_else(|| WorkerError::Internal("missing batch output".into()))).collect()
}
