// What the Node clients of the C tests share: "ok - NAME: what" / "not ok - NAME: what"
// lines (tests/c/run.sh counts them), a watchdog that fails the run when it outlasts its
// budget, bounded waits, and the exit status.

/** A reporter named `name` whose run may last `budgetMs` in all. */
export function tap(name, budgetMs) {
  let passed = 0;
  let failed = 0;
  const watchdog = setTimeout(() => {
    console.log(`not ok - ${name}: timed out`);
    process.exit(1);
  }, budgetMs);
  return {
    check(ok, what) {
      if (ok) passed++;
      else failed++;
      console.log(`${ok ? "ok" : "not ok"} - ${name}: ${what}`);
    },
    /** Stop the watchdog, print the totals when `summary`, exit 0 only without failures. */
    finish({ summary = false } = {}) {
      clearTimeout(watchdog);
      if (summary) console.log(`# ${name}: ${passed} passed, ${failed} failed`);
      process.exit(failed === 0 ? 0 : 1);
    },
  };
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within(ms, promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
