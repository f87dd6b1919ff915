//! `swarmcast-write-floor`: the kernel's floor under fan-out on this machine. One thread
//! does one `write()` of a small frame to each of N loopback TCP sockets, round after
//! round, and reports the CPU time that thread spent per write (read from
//! `/proc/thread-self/schedstat`, in nanoseconds), for 1, 16 and 64 frames per write.
//!
//! On loopback the receiver's TCP work is charged to the sender, so this is what any
//! server pays per delivery at that batching, whatever it does above the socket: the
//! floor the benchmarks are measured against (docs/performance.md). The sockets are
//! read as the load tool reads its clients', all on one thread (`--readers
//! per-socket`: a thread each, blocked in `read()`, where every write wakes a thread of
//! its own: 20-40% more per write here, up to 65% in a paced round of 1,000).
//!
//! Then the same writes paced as the latency rows are (`--paced-hz` rounds a second, one
//! frame per write, to the first 100 sockets and to all): each round's wall and CPU
//! time, p50 and p99. Back to back the caches and the CPU stay warm; a round that starts
//! after 50 ms of quiet, as a server's at 20 broadcasts/s does, is what a server writing
//! nothing but these bytes would take there, tail included. Each paced frame carries its
//! round's start time, and the reader takes the time each one arrives: the latency a
//! server doing nothing but these writes would show in the latency rows (p50, p99),
//! the floor their p99 is held to.
//!
//! `swarmcast-write-floor --sockets 1000 --frame-bytes 262 --rounds 200`

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "CPU per write() of a small frame to many loopback sockets")]
struct Args {
    /// Loopback connections written to.
    #[arg(long, default_value_t = 1000)]
    sockets: usize,
    /// Bytes of one frame (an Engine.IO packet of a small event is ~100-300; at least
    /// 16, for a paced frame's stamp).
    #[arg(long, default_value_t = 262, value_parser = clap::value_parser!(u16).range(16..))]
    frame_bytes: u16,
    /// Rounds of one write to every socket, per batching.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// Run the reading threads on this CPU (the benchmarks' load tool runs on another
    /// core than the server, so every write there also wakes a reader across cores).
    /// Default: wherever the process may run.
    #[arg(long)]
    reader_core: Option<usize>,
    /// How the connections are read: all on one thread (as the load tool does) or a
    /// thread each.
    #[arg(long, value_enum, default_value_t = Readers::OneThread)]
    readers: Readers,
    /// Rounds a second of the paced measurement (0 skips it).
    #[arg(long, default_value_t = 20)]
    paced_hz: u32,
    /// Rounds of the paced measurement, per number of sockets.
    #[arg(long, default_value_t = 200)]
    paced_rounds: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Readers {
    /// One thread reads every connection (epoll, one task each).
    OneThread,
    /// A thread per connection, blocked in read().
    PerSocket,
}

/// The value at quantile `q` of `sorted` (ascending), 0 when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

/// Where every clock reading of this process counts from (writer and readers).
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// The first byte of a paced frame; every other frame starts with `x`.
const STAMPED: u8 = b'T';
/// A paced frame's head: `STAMPED`, its measurement (an index), its round's start
/// (`now_ns`, little-endian).
const HEAD: usize = 10;

/// Rounds of one write of a `frame_bytes` frame to each of `writers`, `hz` a second,
/// each frame stamped with `measurement` and its round's start: each round's wall and
/// thread CPU time in milliseconds, sorted.
fn paced_rounds(
    writers: &mut [TcpStream],
    frame_bytes: usize,
    measurement: u8,
    hz: u32,
    rounds: usize,
) -> std::io::Result<(Vec<f64>, Vec<f64>)> {
    let period = Duration::from_secs(1) / hz;
    let (mut wall, mut cpu) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
    let mut frame = vec![b'x'; frame_bytes];
    frame[0] = STAMPED;
    frame[1] = measurement;
    let mut next = Instant::now() + period;
    for _ in 0..rounds {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += period;
        let (wall0, cpu0) = (Instant::now(), cpu_time::ThreadTime::try_now());
        // Stamped as a server stamps a broadcast: once, before its first write.
        frame[2..HEAD].copy_from_slice(&now_ns().to_le_bytes());
        for w in writers.iter_mut() {
            w.write_all(&frame)?;
        }
        wall.push(wall0.elapsed().as_secs_f64() * 1e3);
        if let Ok(cpu0) = cpu0 {
            cpu.push(cpu0.elapsed().as_secs_f64() * 1e3);
        }
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    Ok((wall, cpu))
}

/// One connection's byte stream cut into its `frame`-byte frames (every write is whole
/// frames): the latency of each stamped one, as (measurement, nanoseconds).
struct FrameScanner {
    frame: usize,
    /// Bytes of the current frame seen so far.
    at: usize,
    head: [u8; HEAD],
}

impl FrameScanner {
    fn new(frame: usize) -> Self {
        Self {
            frame,
            at: 0,
            head: [0; HEAD],
        }
    }

    /// `bytes` arrived at `now`: record the stamped frames they complete the head of.
    fn feed(&mut self, mut bytes: &[u8], now: u64, latencies: &mut Vec<(u8, u64)>) {
        while !bytes.is_empty() {
            let take = if self.at < HEAD {
                let take = (HEAD - self.at).min(bytes.len());
                self.head[self.at..self.at + take].copy_from_slice(&bytes[..take]);
                if self.at + take == HEAD && self.head[0] == STAMPED {
                    let mut sent = [0u8; 8];
                    sent.copy_from_slice(&self.head[2..HEAD]);
                    let sent = u64::from_le_bytes(sent);
                    latencies.push((self.head[1], now.saturating_sub(sent)));
                }
                take
            } else {
                (self.frame - self.at).min(bytes.len())
            };
            self.at += take;
            if self.at == self.frame {
                self.at = 0;
            }
            bytes = &bytes[take..];
        }
    }
}

/// CPU time this thread has run, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let n = args.sockets;
    let frame_bytes = usize::from(args.frame_bytes);
    // The epoch, before any frame is stamped.
    now_ns();
    // Readers drain every connection on their own threads, so writes never block.
    let reader_core = args.reader_core.map(|id| core_affinity::CoreId { id });
    if let Some(core) = reader_core {
        // Checked here, where it can still be reported.
        let pinned = std::thread::spawn(move || core_affinity::set_for_current(core))
            .join()
            .unwrap_or(false);
        if !pinned {
            return Err(std::io::Error::other(format!(
                "cannot run threads on CPU {}",
                core.id
            )));
        }
    }
    let one_thread = args.readers == Readers::OneThread;
    // What the readers return: every stamped frame's (measurement, latency in ns).
    let acceptor = std::thread::spawn(move || -> std::io::Result<Vec<(u8, u64)>> {
        if let Some(core) = reader_core {
            core_affinity::set_for_current(core);
        }
        if one_thread {
            return read_on_one_thread(listener, n, frame_bytes);
        }
        let mut readers = Vec::new();
        for _ in 0..n {
            let Ok((mut conn, _)) = listener.accept() else {
                break;
            };
            readers.push(std::thread::spawn(move || {
                if let Some(core) = reader_core {
                    core_affinity::set_for_current(core);
                }
                let (mut scanner, mut latencies) = (FrameScanner::new(frame_bytes), Vec::new());
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(k @ 1..) = conn.read(&mut buf) {
                    scanner.feed(&buf[..k], now_ns(), &mut latencies);
                }
                latencies
            }));
        }
        let mut all = Vec::new();
        for reader in readers {
            all.extend(reader.join().unwrap_or_default());
        }
        Ok(all)
    });
    let mut writers = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        writers.push(s);
    }
    println!(
        "write() floor: {} loopback sockets, {}-byte frames, {} rounds per batching, readers {:?} {}",
        n,
        args.frame_bytes,
        args.rounds,
        args.readers,
        match args.reader_core {
            Some(id) => format!("on CPU {id}"),
            None => "beside the writer".to_string(),
        }
    );
    println!("frames/write  cpu µs/write  cpu µs/delivery  wall µs/write");
    let mut rows = Vec::new();
    for frames_per_write in [1usize, 16, 64] {
        let payload = vec![b'x'; frame_bytes * frames_per_write];
        // Warm up the connections (buffers, congestion window).
        for w in &mut writers {
            w.write_all(&payload)?;
        }
        std::thread::sleep(Duration::from_millis(200));
        let (cpu0, wall0) = (thread_cpu_ns(), Instant::now());
        for _ in 0..args.rounds {
            for w in &mut writers {
                w.write_all(&payload)?;
            }
        }
        let cpu = thread_cpu_ns().saturating_sub(cpu0) as f64 / 1000.0;
        let wall = wall0.elapsed().as_secs_f64() * 1e6;
        let writes = (args.rounds * n) as f64;
        println!(
            "{:>12}  {:>12.2}  {:>15.3}  {:>13.2}",
            frames_per_write,
            cpu / writes,
            cpu / writes / frames_per_write as f64,
            wall / writes
        );
        rows.push(serde_json::json!({
            "frames_per_write": frames_per_write,
            "cpu_us_per_write": cpu / writes,
            "cpu_us_per_delivery": cpu / writes / frames_per_write as f64,
            "wall_us_per_write": wall / writes,
        }));
    }
    if args.paced_hz > 0 {
        println!(
            "paced: {} rounds a second, one {}-byte write per socket per round",
            args.paced_hz, args.frame_bytes
        );
        println!("sockets  wall ms p50  wall ms p99  cpu ms p50  cpu ms p99");
        let mut sizes = vec![n.min(100), n];
        sizes.dedup();
        for (measurement, sockets) in sizes.into_iter().enumerate() {
            let (wall, cpu) = paced_rounds(
                &mut writers[..sockets],
                frame_bytes,
                measurement as u8,
                args.paced_hz,
                args.paced_rounds,
            )?;
            let row = serde_json::json!({
                "paced_sockets": sockets,
                "paced_hz": args.paced_hz,
                "round_wall_ms_p50": quantile(&wall, 0.5),
                "round_wall_ms_p99": quantile(&wall, 0.99),
                "round_cpu_ms_p50": quantile(&cpu, 0.5),
                "round_cpu_ms_p99": quantile(&cpu, 0.99),
            });
            println!(
                "{:>7}  {:>11.3}  {:>11.3}  {:>10.3}  {:>10.3}",
                sockets,
                quantile(&wall, 0.5),
                quantile(&wall, 0.99),
                quantile(&cpu, 0.5),
                quantile(&cpu, 0.99)
            );
            rows.push(row);
        }
    }
    drop(writers);
    let latencies = acceptor
        .join()
        .map_err(|_| std::io::Error::other("a reader panicked"))??;
    let paced: Vec<_> = rows
        .iter_mut()
        .filter(|r| r.get("paced_sockets").is_some())
        .collect();
    if !paced.is_empty() {
        println!("paced, as the reader sees each frame (from its round's start)");
        println!("sockets  frames  latency ms p50  latency ms p90  latency ms p99");
    }
    for (measurement, row) in paced.into_iter().enumerate() {
        let mut ms: Vec<f64> = latencies
            .iter()
            .filter(|(m, _)| usize::from(*m) == measurement)
            .map(|(_, ns)| *ns as f64 / 1e6)
            .collect();
        ms.sort_by(f64::total_cmp);
        let (p50, p90, p99) = (quantile(&ms, 0.5), quantile(&ms, 0.9), quantile(&ms, 0.99));
        println!(
            "{:>7}  {:>6}  {:>14.3}  {:>14.3}  {:>14.3}",
            row["paced_sockets"].as_u64().unwrap_or(0),
            ms.len(),
            p50,
            p90,
            p99
        );
        row["delivered"] = ms.len().into();
        row["delivery_ms_p50"] = p50.into();
        row["delivery_ms_p90"] = p90.into();
        row["delivery_ms_p99"] = p99.into();
    }
    // The same rows for scripts (benches/bench.py), one JSON object per line.
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

/// Accept `n` connections and drain them all on this thread, one task each on a
/// single-threaded runtime (epoll): how the load tool reads, so a write wakes a reader
/// that is often awake already, not a thread of its own.
fn read_on_one_thread(
    listener: TcpListener,
    n: usize,
    frame_bytes: usize,
) -> std::io::Result<Vec<(u8, u64)>> {
    use tokio::io::AsyncReadExt;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let mut readers = tokio::task::JoinSet::new();
        for _ in 0..n {
            let (mut conn, _) = listener.accept().await?;
            readers.spawn(async move {
                let (mut scanner, mut latencies) = (FrameScanner::new(frame_bytes), Vec::new());
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(k @ 1..) = conn.read(&mut buf).await {
                    scanner.feed(&buf[..k], now_ns(), &mut latencies);
                }
                latencies
            });
        }
        let mut all = Vec::new();
        while let Some(latencies) = readers.join_next().await {
            all.extend(latencies.unwrap_or_default());
        }
        Ok(all)
    })
}

#[cfg(all(test, feature = "selftest"))]
mod tests {
    use super::*;

    fn stamped(frame: usize, measurement: u8, sent: u64) -> Vec<u8> {
        let mut f = vec![b'x'; frame];
        f[0] = STAMPED;
        f[1] = measurement;
        f[2..HEAD].copy_from_slice(&sent.to_le_bytes());
        f
    }

    #[test]
    fn stamped_frames_are_found_however_the_reads_cut_them() {
        let frame = 16;
        let mut stream = vec![b'x'; frame * 3]; // unstamped frames first
        stream.extend(stamped(frame, 0, 100));
        stream.extend(vec![b'x'; frame]);
        stream.extend(stamped(frame, 1, 250));
        for cut in 1..=stream.len() {
            let (mut scanner, mut latencies) = (FrameScanner::new(frame), Vec::new());
            for (i, chunk) in stream.chunks(cut).enumerate() {
                scanner.feed(chunk, 1_000 + i as u64, &mut latencies);
            }
            assert_eq!(latencies.len(), 2, "reads of {cut} bytes");
            assert_eq!(latencies[0].0, 0);
            assert_eq!(latencies[1].0, 1);
            // Timed at the read that completes the stamp's head.
            let done = |at: usize| 1_000 + ((at + HEAD - 1) / cut) as u64;
            assert_eq!(latencies[0].1, done(frame * 3) - 100);
            assert_eq!(latencies[1].1, done(frame * 5) - 250);
        }
    }
}
