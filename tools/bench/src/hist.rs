//! A log-linear latency histogram in microseconds: exact below 1,024 µs, then 512
//! sub-buckets per power of two (under 0.2% error). Recording is an index computation
//! and an add, cheap enough for every delivered event.

const EXACT: u64 = 1024;
const SUB_BITS: u32 = 9;
const SUB: u64 = 1 << SUB_BITS;
/// Powers of two covered above `EXACT`: up to 2^40 µs (12 days).
const OCTAVES: u64 = 31;

pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
    min: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; (EXACT + OCTAVES * SUB) as usize],
            total: 0,
            sum: 0,
            max: 0,
            min: u64::MAX,
        }
    }
}

fn index(v: u64) -> usize {
    if v < EXACT {
        return v as usize;
    }
    let e = u64::from(63 - v.leading_zeros()).min(9 + OCTAVES);
    let m = (v >> (e - u64::from(SUB_BITS))).min(2 * SUB - 1);
    (EXACT + (e - 10) * SUB + (m - SUB)) as usize
}

/// The middle of bucket `i`.
fn value(i: usize) -> u64 {
    let i = i as u64;
    if i < EXACT {
        return i;
    }
    let e = (i - EXACT) / SUB + 10;
    let m = (i - EXACT) % SUB + SUB;
    let shift = e - u64::from(SUB_BITS);
    (m << shift) + (1 << shift) / 2
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[index(v)] += 1;
        self.total += 1;
        self.sum += u128::from(v);
        self.max = self.max.max(v);
        self.min = self.min.min(v);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below which `q` (0..=1) of the samples fall.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return value(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(all(test, feature = "selftest"))]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_trip_within_a_fraction_of_a_percent() {
        for v in [0, 1, 1023, 1024, 1500, 4096, 99_999, 1_234_567, 60_000_000] {
            let got = value(index(v));
            let err = got.abs_diff(v) as f64 / (v.max(1)) as f64;
            assert!(err < 0.002, "{v} -> {got}");
        }
    }

    #[test]
    fn quantiles() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v);
        }
        assert_eq!(h.quantile(0.5), 500);
        assert_eq!(h.quantile(0.99), 990);
        assert_eq!(h.max(), 1000);
    }
}
