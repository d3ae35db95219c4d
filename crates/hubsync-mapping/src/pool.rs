//! The evaluation threads. jsonata-core's values and compiled expressions are `!Send`, so each
//! thread compiles its own copy of every expression and keeps it; jobs arrive over one shared
//! channel and answers go back over a tokio `oneshot` (svix-bridge's `JsPooler` pattern).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use hubsync_core::{FieldMap, ObjectType};
use jsonata_core::Expression;
use jsonata_core::evaluator::EvaluatorOptions;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::MappingError;
use crate::locate;
use crate::{Catalog, Properties, translate};

/// A batch of records to translate.
pub(crate) enum Job {
    ToUnified {
        ty: ObjectType,
        objects: Vec<Value>,
        reply: oneshot::Sender<Vec<Result<FieldMap, MappingError>>>,
    },
    ToHubspot {
        ty: ObjectType,
        records: Vec<FieldMap>,
        reply: oneshot::Sender<Vec<Result<Properties, MappingError>>>,
    },
}

/// The compiled expressions of one thread, indexed like [`ObjectType::ALL`].
struct Programs {
    to_unified: Vec<Expression>,
    to_hubspot: Vec<Expression>,
}

/// A fixed set of evaluation threads; they stop when the pool is dropped.
pub(crate) struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    /// Starts `workers` threads over `catalog` (whose expressions are known to compile).
    pub(crate) fn start(
        catalog: Arc<Catalog>,
        workers: usize,
        options: EvaluatorOptions,
    ) -> Result<Pool, MappingError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            let catalog = Arc::clone(&catalog);
            let options = options.clone();
            thread::Builder::new()
                .name(format!("hubsync-mapping-{i}"))
                .spawn(move || worker(&catalog, &rx, &options))
                .map_err(MappingError::Spawn)?;
        }
        Ok(Pool { jobs: tx })
    }

    /// Queues a job; fails when the threads are gone.
    pub(crate) fn submit(&self, job: Job) -> Result<(), MappingError> {
        self.jobs.send(job).map_err(|_| MappingError::PoolClosed)
    }
}

fn compile_all(catalog: &Catalog, options: &EvaluatorOptions) -> Result<Programs, MappingError> {
    let mut programs = Programs {
        to_unified: Vec::new(),
        to_hubspot: Vec::new(),
    };
    for ty in ObjectType::ALL {
        let object = catalog.object(ty);
        programs.to_unified.push(locate::compile(
            &object.to_unified.name,
            &object.to_unified.text,
            options,
        )?);
        programs.to_hubspot.push(locate::compile(
            &object.to_hubspot.name,
            &object.to_hubspot.text,
            options,
        )?);
    }
    Ok(programs)
}

fn worker(catalog: &Catalog, rx: &Mutex<mpsc::Receiver<Job>>, options: &EvaluatorOptions) {
    let programs = match compile_all(catalog, options) {
        Ok(p) => p,
        Err(error) => {
            // Unreachable in practice: the same sources compiled at load.
            tracing::error!(%error, "mapping thread cannot compile its expressions");
            return;
        }
    };
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|p| p.into_inner());
            rx.recv()
        };
        let Ok(job) = job else {
            return; // the pool was dropped
        };
        match job {
            Job::ToUnified { ty, objects, reply } => {
                let i = index(ty);
                let object = catalog.object(ty);
                let out = objects
                    .into_iter()
                    .map(|o| {
                        translate::to_unified(
                            &object.spec,
                            &object.to_unified.name,
                            &programs.to_unified[i],
                            o,
                        )
                    })
                    .collect();
                // The caller may have gone away (a cancelled request); nothing to do then.
                let _ = reply.send(out);
            }
            Job::ToHubspot { ty, records, reply } => {
                let i = index(ty);
                let object = catalog.object(ty);
                let out = records
                    .iter()
                    .map(|r| {
                        translate::to_hubspot(
                            &object.spec,
                            &object.to_hubspot.name,
                            &programs.to_hubspot[i],
                            r,
                        )
                    })
                    .collect();
                let _ = reply.send(out);
            }
        }
    }
}

/// The position of `ty` in [`ObjectType::ALL`].
pub(crate) fn index(ty: ObjectType) -> usize {
    ObjectType::ALL.iter().position(|t| *t == ty).unwrap_or(0)
}
