//! The core's log events (`tracing`, targets `swarmcast` and `swarmcast::engine`) on
//! Python's `logging`: loggers `swarmcast` (connections, disconnects with their reason,
//! refused connects, slow consumers) and `swarmcast.engine` (transport upgrades).
//!
//! Off until a server asks for it (`logger=True` / `engineio_logger=True`). Then a
//! `tracing` layer, interested only in those targets at INFO and above (every other
//! call site stays disabled, at no cost), formats each event and hands it to a
//! bounded channel without waiting (a full channel drops the record: logging never
//! slows the network threads); one thread of its own takes the GIL to call
//! `logging`.

use std::sync::OnceLock;

use crossbeam_channel::{Receiver, Sender};
use pyo3::prelude::*;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Records waiting for the logging thread, at most.
const BACKLOG: usize = 4096;

struct Record {
    engine: bool,
    level: u8,
    message: String,
}

static SENDER: OnceLock<Sender<Record>> = OnceLock::new();

/// Forward the core's log events to `logging` (once per process), and turn the
/// loggers on at INFO: `swarmcast` when `logger`, `swarmcast.engine` when `engine`
/// (otherwise WARNING, unless the application set their level).
pub(crate) fn enable(py: Python<'_>, logger: bool, engine: bool) -> PyResult<()> {
    let logging = py.import("logging")?;
    let configure = |name: &str, on: bool| -> PyResult<()> {
        let target = logging.call_method1("getLogger", (name,))?;
        // Asked for: at least INFO. Not asked for: WARNING, unless the application set
        // a level itself.
        let level = target.getattr("level")?.extract::<i32>()?;
        if on && (level == 0 || level > 20) {
            target.call_method1("setLevel", (20,))?;
        } else if !on && level == 0 {
            target.call_method1("setLevel", (30,))?;
        }
        if on && !target.call_method0("hasHandlers")?.is_truthy()? {
            target.call_method1("addHandler", (logging.call_method0("StreamHandler")?,))?;
        }
        Ok(())
    };
    configure("swarmcast", logger)?;
    configure("swarmcast.engine", engine)?;
    SENDER.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(BACKLOG);
        let _ = std::thread::Builder::new()
            .name("swarmcast-log".into())
            .spawn(move || forward(&rx));
        let _ =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ToPython));
        tx
    });
    Ok(())
}

fn forward(rx: &Receiver<Record>) {
    while let Ok(record) = rx.recv() {
        let logged = Python::try_attach(|py| {
            let name = if record.engine {
                "swarmcast.engine"
            } else {
                "swarmcast"
            };
            let _ = py
                .import("logging")
                .and_then(|l| l.call_method1("getLogger", (name,)))
                .and_then(|l| l.call_method1("log", (record.level, "%s", record.message)));
        });
        if logged.is_none() {
            return; // the interpreter is finalizing
        }
    }
}

fn wanted(metadata: &Metadata<'_>) -> bool {
    *metadata.level() <= Level::INFO && metadata.target().starts_with("swarmcast")
}

struct ToPython;

impl<S: tracing::Subscriber> Layer<S> for ToPython {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if wanted(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        wanted(metadata)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let Some(tx) = SENDER.get() else { return };
        let metadata = event.metadata();
        let level = match *metadata.level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            _ => 20,
        };
        let _ = tx.try_send(Record {
            engine: metadata.target().starts_with("swarmcast::engine"),
            level,
            message: swarmcast::host::event_text(event),
        });
    }
}
