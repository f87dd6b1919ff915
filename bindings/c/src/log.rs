//! The log callback: the core's `tracing` events (targets `swarmcast...`: listening,
//! connects with address and transport, refusals, disconnects with their reason, slow
//! consumers, transport upgrades, Redis outages and returns) delivered to a C function.
//!
//! The approach of the Python binding (`bindings/python/src/pylog.rs`): nothing is
//! installed until a callback is set. Then a `tracing` layer, interested only in
//! `swarmcast` targets at the chosen level and above (every other call site stays
//! disabled, at no cost), formats each event and hands it to a bounded channel
//! without waiting (a full channel drops the record: logging never slows the network
//! threads), and one thread of its own calls the C function.
//!
//! The subscriber is this library's own: libswarmcast carries its own copy of
//! `tracing` (the static library keeps only `swarmcast_*` global), so a host process
//! with a `tracing` subscriber of its own (another Rust library) neither sees these
//! events nor has its subscriber replaced.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::ffi::{c_bytes, c_string, UserData};
use crate::panic::boundary;
use crate::result::swarmcast_result;

/// Severity of a log record, and the filter of `swarmcast_set_log_callback` (a record
/// is delivered when its level is at most the filter: `SWARMCAST_LOG_LEVEL_WARN`
/// delivers errors and warnings). Passed as a `uint32_t`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum swarmcast_log_level {
    /// Something failed (Redis refused the credentials, ...).
    Error = 1,
    /// Something went wrong and was handled (a slow consumer disconnected, Redis
    /// unreachable, a bad argument's reason, ...).
    Warn = 2,
    /// The life of the server: listening, connects, refusals, disconnects, upgrades.
    Info = 3,
    /// Detail for debugging.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

/// Receives one log record: `level` (a `swarmcast_log_level`), `target` (where in
/// swarmcast it comes from, such as "swarmcast::socketio::connection"), and `message`
/// (`message_len` bytes of UTF-8, also NUL-terminated: the text then `key=value`
/// fields).
///
/// Thread: a thread of the library's own ("swarmcast-log"), never a network or handler
/// thread. Overlap: calls never overlap; records arrive in the order they were logged
/// (records logged while 4096 wait are dropped). Lifetime: `target` and `message` are
/// valid only until the callback returns. It must not call
/// `swarmcast_set_log_callback` (that returns `SWARMCAST_RESULT_IN_CALLBACK`).
pub type swarmcast_log_callback = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        level: u32,
        target: *const c_char,
        message: *const c_char,
        message_len: usize,
    ),
>;

/// Records waiting for the log thread, at most.
const BACKLOG: usize = 4096;

/// The current filter: 0 when no callback is set, else a `swarmcast_log_level`.
static MAX_LEVEL: AtomicU32 = AtomicU32::new(0);
/// The callback and its userdata; held while the callback runs, so that setting
/// another waits for a call in progress.
static SINK: Mutex<Option<Sink>> = Mutex::new(None);

/// The callback set, and its userdata.
#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(*mut c_void, u32, *const c_char, *const c_char, usize),
    userdata: UserData,
}
static SENDER: OnceLock<Result<Sender<Record>, swarmcast_result>> = OnceLock::new();

thread_local! {
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
}

struct Record {
    level: u32,
    target: &'static str,
    message: String,
}

/// Deliver the library's log records at `max_level` (a `swarmcast_log_level`) and
/// above to `callback`, with `userdata` (may be NULL) passed back; NULL `callback`
/// turns logging off. Replaces an earlier callback; once this returns, the earlier
/// one is not called any more (a call in progress is waited for). Off by default: the
/// library never writes to stdout or stderr itself.
///
/// Process-wide (every server and emitter). The first call with a callback starts the
/// log thread and installs the library's own `tracing` subscriber; that subscriber
/// lives in libswarmcast's copy of `tracing`, so a host process with a `tracing`
/// subscriber of its own (another Rust library) neither receives these records nor is
/// affected. Records below the filter cost nothing.
///
/// Returns `SWARMCAST_RESULT_INVALID_ARGUMENT` for a `max_level` that is not a
/// `swarmcast_log_level` (with a callback), `SWARMCAST_RESULT_IN_CALLBACK` when called
/// from the log callback, `SWARMCAST_RESULT_RUNTIME_FAILED` if the log thread cannot
/// start.
///
/// Thread safety: any thread but the log callback's.
///
/// # Safety
/// `callback` is NULL or a function as `swarmcast_log_callback` describes; `userdata`
/// stays valid, and usable from the log thread, until logging is turned off or another
/// callback is set.
#[no_mangle]
pub unsafe extern "C" fn swarmcast_set_log_callback(
    callback: swarmcast_log_callback,
    userdata: *mut c_void,
    max_level: u32,
) -> swarmcast_result {
    boundary(|| {
        if IN_CALLBACK.with(Cell::get) {
            return Err(swarmcast_result::InCallback);
        }
        let Some(callback) = callback else {
            let mut sink = SINK.lock();
            *sink = None;
            MAX_LEVEL.store(0, Ordering::Release);
            drop(sink);
            tracing::callsite::rebuild_interest_cache();
            return Ok(());
        };
        if !(swarmcast_log_level::Error as u32..=swarmcast_log_level::Trace as u32)
            .contains(&max_level)
        {
            return Err(swarmcast_result::InvalidArgument);
        }
        install()?;
        let mut sink = SINK.lock();
        *sink = Some(Sink {
            callback,
            userdata: UserData::new(userdata),
        });
        MAX_LEVEL.store(max_level, Ordering::Release);
        drop(sink);
        // Call sites cache whether they are enabled: ask them again.
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    })
}

/// Start the log thread and install the subscriber, once per process.
fn install() -> Result<(), swarmcast_result> {
    SENDER
        .get_or_init(|| {
            let (tx, rx) = crossbeam_channel::bounded(BACKLOG);
            std::thread::Builder::new()
                .name("swarmcast-log".into())
                .spawn(move || forward(&rx))
                .map_err(|_| swarmcast_result::RuntimeFailed)?;
            // Fails only if this library's copy of `tracing` has a global subscriber
            // already, which nothing but this function installs.
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ToC))
                .map_err(|_| swarmcast_result::RuntimeFailed)?;
            Ok(tx)
        })
        .as_ref()
        .map(drop)
        .map_err(|e| *e)
}

fn forward(rx: &Receiver<Record>) {
    while let Ok(record) = rx.recv() {
        let sink = SINK.lock();
        let Some(Sink { callback, userdata }) = *sink else {
            continue;
        };
        if record.level > MAX_LEVEL.load(Ordering::Acquire) {
            continue;
        }
        let target = c_string(record.target);
        let message = c_bytes(&record.message);
        IN_CALLBACK.with(|c| c.set(true));
        // SAFETY: the caller of `swarmcast_set_log_callback` promised a function of
        // this type and a userdata usable from this thread; the strings live until it
        // returns. A panic cannot come out of C.
        unsafe {
            callback(
                userdata.get(),
                record.level,
                target.as_ptr(),
                message.as_ptr().cast::<c_char>(),
                message.len() - 1,
            );
        }
        IN_CALLBACK.with(|c| c.set(false));
        drop(sink);
    }
}

fn level_of(level: &Level) -> u32 {
    match *level {
        Level::ERROR => swarmcast_log_level::Error as u32,
        Level::WARN => swarmcast_log_level::Warn as u32,
        Level::INFO => swarmcast_log_level::Info as u32,
        Level::DEBUG => swarmcast_log_level::Debug as u32,
        Level::TRACE => swarmcast_log_level::Trace as u32,
    }
}

fn wanted(metadata: &Metadata<'_>) -> bool {
    level_of(metadata.level()) <= MAX_LEVEL.load(Ordering::Acquire)
        && metadata.target().starts_with("swarmcast")
}

/// The layer: filters by target and level, formats, hands over without waiting.
struct ToC;

impl<S: tracing::Subscriber> Layer<S> for ToC {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        // Cached per call site until the next `rebuild_interest_cache`.
        if wanted(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        wanted(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(match MAX_LEVEL.load(Ordering::Acquire) {
            0 => LevelFilter::OFF,
            1 => LevelFilter::ERROR,
            2 => LevelFilter::WARN,
            3 => LevelFilter::INFO,
            4 => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let Some(Ok(tx)) = SENDER.get() else { return };
        let metadata = event.metadata();
        let _ = tx.try_send(Record {
            level: level_of(metadata.level()),
            target: metadata.target(),
            message: sc::host::event_text(event),
        });
    }
}
