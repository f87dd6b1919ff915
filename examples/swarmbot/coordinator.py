"""The SwarmCoordinator: a task queue, agents on threads, sampled performance metrics.

It publishes every change to its sinks (`Sink` below): the demo connects one that
calls swarmcast. It also keeps its own view (`view()`), which the dashboard's old
polling mode reads once a second.
"""

from __future__ import annotations

import collections
import itertools
import random
import threading
import time
from typing import Any, Deque, Dict, List, Optional, Protocol

from agents import AGENT_CLASSES, DONE, BaseAgent, Task

STAGES = ("research", "code", "review", "test")

TITLES = (
    "Survey WebSocket backpressure designs",
    "Add jittered reconnect backoff",
    "Port the chat example to swarmcast",
    "Benchmark fan-out to 10k sockets",
    "Write the recovery test plan",
    "Fix flaky long-polling test",
    "Summarise the Engine.IO v4 spec",
    "Profile the broadcast encoder",
    "Review the slow-consumer policy",
    "Harden the CORS origin check",
    "Draft the Dash integration guide",
    "Measure p99 push latency",
    "Triage dashboard bug reports",
    "Shrink the polling payloads",
)


class Sink(Protocol):
    """Where the coordinator publishes: agents and tasks as keyed state (value None:
    removed), activity entries and metric samples as events."""

    def agent(self, agent_id: str, value: Dict[str, Any]) -> None: ...
    def task(self, task_id: str, value: Optional[Dict[str, Any]]) -> None: ...
    def activity(self, entry: Dict[str, Any]) -> None: ...
    def metrics(self, sample: Dict[str, Any]) -> None: ...


class SwarmCoordinator:
    """Creates tasks, assigns each stage to an idle agent of the right role, samples
    metrics every `sample_interval` seconds. Every loop is bounded by `stop()`."""

    def __init__(
        self,
        agents_per_role: int = 2,
        task_rate: float = 0.5,
        max_queue: int = 24,
        keep_done: int = 8,
        sample_interval: float = 0.5,
        seed: Optional[int] = None,
    ) -> None:
        self.task_rate = task_rate
        self.max_queue = max_queue
        self.keep_done = keep_done
        self.sample_interval = sample_interval
        self._rng = random.Random(seed)
        self._sinks: List[Sink] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._ids = itertools.count(1)
        self.tasks: Dict[str, Task] = {}
        self._done_order: Deque[str] = collections.deque()
        self.activity_log: Deque[Dict[str, Any]] = collections.deque(maxlen=200)  # what the log shows
        self.metrics_log: Deque[Dict[str, Any]] = collections.deque(maxlen=120)
        self._published = 0  # sink calls, for events/s
        self._completed: Deque[float] = collections.deque(maxlen=500)  # finish times
        self._latencies: Deque[float] = collections.deque(maxlen=50)  # seconds, per task
        self.agents: Dict[str, BaseAgent] = {}
        for cls in AGENT_CLASSES:
            for n in range(1, agents_per_role + 1):
                agent = cls(f"{cls.role}-{n}", self._agent_changed, seed=self._rng.randrange(1 << 30))
                agent.on_stage_done = self._stage_done
                self.agents[agent.id] = agent
        self._threads = [
            threading.Thread(target=self._generate, name="swarm-tasks", daemon=True),
            threading.Thread(target=self._dispatch, name="swarm-dispatch", daemon=True),
            threading.Thread(target=self._sample, name="swarm-metrics", daemon=True),
        ]

    # -- lifecycle ------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        self._sinks.append(sink)

    def start(self) -> None:
        for agent in self.agents.values():
            self._publish("agent", agent.id, agent.view())
            agent.start()
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for agent in self.agents.values():
            agent.stop(timeout)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def pause(self) -> None:
        """No new tasks and no new assignments; agents finish what they hold."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def wait_idle(self, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(a.idle for a in self.agents.values()):
                return True
            time.sleep(0.05)
        return False

    # -- what the dashboard's polling mode reads --------------------------------------

    def view(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "agents": {a.id: a.view() for a in self.agents.values()},
                "tasks": {t.id: t.view() for t in self.tasks.values()},
                "activity": list(self.activity_log),
                "metrics": list(self.metrics_log),
            }

    # -- publishing -------------------------------------------------------------------

    def _publish(self, kind: str, *args: Any) -> None:
        with self._lock:
            self._published += 1
            for sink in self._sinks:
                getattr(sink, kind)(*args)

    def log(self, text: str, agent: Optional[str] = None, kind: str = "info", **extra: Any) -> None:
        entry = {"t": round(time.time() * 1000), "agent": agent, "kind": kind, "text": text, **extra}
        with self._lock:
            self.activity_log.append(entry)
            self._publish("activity", entry)

    def _agent_changed(self, agent: BaseAgent, note: Optional[str]) -> None:
        with self._lock:
            self._publish("agent", agent.id, agent.view())
        if note:
            self.log(note, agent=agent.id, kind="blocked")

    def _task_changed(self, task: Task) -> None:
        self._publish("task", task.id, task.view())

    # -- the threads ---------------------------------------------------------------------

    def _generate(self) -> None:
        while not self._stop.wait(self._rng.expovariate(self.task_rate) if self.task_rate > 0 else 1.0):
            if self._paused.is_set() or self.task_rate <= 0:
                continue
            with self._lock:
                waiting = sum(1 for t in self.tasks.values() if t.waiting)
                if waiting >= self.max_queue:
                    continue
                n = next(self._ids)
                task = Task(id=f"T-{n:04d}", title=self._rng.choice(TITLES))
                self.tasks[task.id] = task
                self._task_changed(task)
                self.log(f"{task.id} queued: {task.title}", kind="queued", task=task.id)

    def _dispatch(self) -> None:
        while not self._stop.wait(0.1):
            if self._paused.is_set():
                continue
            with self._lock:
                waiting = sorted((t for t in self.tasks.values() if t.waiting), key=lambda t: t.created)
                for task in waiting:
                    stage = STAGES[0] if task.stage == "queued" else task.stage
                    agent = next(
                        (a for a in self.agents.values() if a.stage == stage and a.idle),
                        None,
                    )
                    if agent is None or not agent.assign(task):
                        continue
                    task.stage = stage
                    task.waiting = False
                    task.agent = agent.id
                    self._task_changed(task)

    def _stage_done(self, agent: BaseAgent, task: Task) -> None:
        with self._lock:
            index = STAGES.index(task.stage)
            if index + 1 < len(STAGES):
                task.stage = STAGES[index + 1]
                task.waiting = True
                task.agent = None
                self._task_changed(task)
                self.log(f"{agent.id} finished {STAGES[index]} of {task.id}", agent=agent.id, kind="stage", task=task.id)
                return
            now = time.time()
            task.stage = "done"
            task.waiting = False
            task.finished = now
            self._completed.append(now)
            self._latencies.append(now - task.created)
            self._task_changed(task)
            self.log(f"{task.id} done in {now - task.created:.1f} s", agent=agent.id, kind=DONE, task=task.id)
            self._done_order.append(task.id)
            while len(self._done_order) > self.keep_done:
                old = self._done_order.popleft()
                self.tasks.pop(old, None)
                self._publish("task", old, None)

    def _sample(self) -> None:
        last_count, last_time = 0, time.monotonic()
        while not self._stop.wait(self.sample_interval):
            now = time.monotonic()
            with self._lock:
                published = self._published
                window = 30.0
                wall = time.time()
                done_recent = sum(1 for t in self._completed if wall - t <= window)
                lat = sorted(self._latencies)
                sample = {
                    "t": round(wall * 1000),
                    "eps": round((published - last_count) / max(now - last_time, 1e-3), 1),
                    "tpm": round(done_recent * 60.0 / window, 1),
                    "queue": sum(1 for t in self.tasks.values() if t.waiting),
                    "busy": sum(1 for a in self.agents.values() if not a.idle),
                    "lat50": round(lat[len(lat) // 2], 2) if lat else None,
                    "lat95": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 2) if lat else None,
                }
                last_count, last_time = published, now
                self.metrics_log.append(sample)
                self._publish("metrics", sample)
