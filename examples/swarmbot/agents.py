"""SwarmBot agents: worker threads that take tasks and change state while they work.

Agents know nothing of Dash or swarmcast: they call the `report` function the
coordinator gives them with their own public view after every change.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

# The states an agent goes through.
IDLE, THINKING, WORKING, BLOCKED, DONE = "idle", "thinking", "working", "blocked", "done"
STATES = (IDLE, THINKING, WORKING, BLOCKED, DONE)


@dataclass
class Task:
    """A unit of work that flows through the stages research -> code -> review -> test."""

    id: str
    title: str
    created: float = field(default_factory=time.time)
    stage: str = "queued"  # queued | research | code | review | test | done
    waiting: bool = True  # waiting for an agent of its stage
    agent: Optional[str] = None
    finished: Optional[float] = None
    blocked_count: int = 0

    def view(self) -> Dict[str, Any]:
        return {
            "title": self.title,
            "stage": self.stage,
            "waiting": self.waiting,
            "agent": self.agent,
            "created": round(self.created * 1000),
            "finished": round(self.finished * 1000) if self.finished else None,
        }


Report = Callable[["BaseAgent", Optional[str]], None]


class BaseAgent:
    """One agent on a thread of its own. Subclasses set the role and the timings.

    `assign(task)` hands it a task (the coordinator only assigns to idle agents);
    `report(agent, note)` is called after every state change, from the agent's thread.
    """

    role = "agent"
    stage = ""
    think = (0.3, 0.8)  # seconds, uniform
    work = (1.0, 2.5)
    block_chance = 0.08
    block_time = (0.8, 2.0)
    verbs: Tuple[str, ...] = ("working on",)

    def __init__(self, agent_id: str, report: Report, seed: Optional[int] = None) -> None:
        self.id = agent_id
        self._report = report
        self._rng = random.Random(seed)
        self._inbox: "queue.Queue[Task]" = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"agent-{agent_id}", daemon=True)
        self._lock = threading.Lock()
        self.state = IDLE
        self.task: Optional[Task] = None
        self.progress = 0
        self.completed = 0
        self.note = ""
        self.changed = time.time()
        self.on_stage_done: Callable[["BaseAgent", Task], None] = lambda agent, task: None

    # -- the coordinator's side ---------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    @property
    def idle(self) -> bool:
        return self.state == IDLE and self._inbox.empty()

    def assign(self, task: Task) -> bool:
        try:
            self._inbox.put_nowait(task)
            return True
        except queue.Full:
            return False

    def view(self) -> Dict[str, Any]:
        with self._lock:
            return {
                "role": self.role,
                "status": self.state,
                "task": self.task.id if self.task else None,
                "progress": self.progress,
                "done": self.completed,
                "note": self.note,
                "ts": round(self.changed * 1000, 3),
            }

    # -- the agent's own thread ---------------------------------------------------------

    def _set(self, state: str, note: str = "", progress: Optional[int] = None, log: Optional[str] = None) -> None:
        with self._lock:
            self.state = state
            self.note = note
            if progress is not None:
                self.progress = progress
            self.changed = time.time()
        self._report(self, log)

    def _sleep(self, span: "tuple[float, float]") -> bool:
        """Sleep a random time within `span`; False if asked to stop meanwhile."""
        return not self._stop.wait(self._rng.uniform(*span))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                task = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._lock:
                self.task = task
            if not self.perform(task):
                return
            self.completed += 1
            self.on_stage_done(self, task)
            if not self._sleep((0.2, 0.5)):
                return
            with self._lock:
                self.task = None
                self.progress = 0
            self._set(IDLE)

    def perform(self, task: Task) -> bool:
        """Think, work (in steps, sometimes blocked), done. False if stopped."""
        verb = self._rng.choice(self.verbs)
        # Notes are short: the task is in its own column.
        self._set(THINKING, "planning", progress=0)
        if not self._sleep(self.think):
            return False
        self._set(WORKING, verb, progress=0)
        steps = 2  # one progress report half-way
        for step in range(1, steps + 1):
            if not self._sleep(tuple(x / steps for x in self.work)):  # type: ignore[arg-type]
                return False
            if step < steps and self._rng.random() < self.block_chance:
                task.blocked_count += 1
                reason = self._rng.choice(self.block_reasons())
                self._set(BLOCKED, reason, log=f"{self.id} blocked on {task.id}: {reason}")
                if not self._sleep(self.block_time):
                    return False
                self._set(WORKING, verb)
            if step < steps:
                self._set(WORKING, verb, progress=round(100 * step / steps))
        self._set(DONE, f"{self.stage} finished", progress=100)
        return True

    def block_reasons(self) -> List[str]:
        return ["waiting for a rate limit", "waiting for input"]


class ResearcherAgent(BaseAgent):
    role = "researcher"
    stage = "research"
    think = (0.4, 1.0)
    work = (1.2, 2.8)
    verbs = ("reading sources", "summarising")

    def block_reasons(self) -> List[str]:
        return ["search API rate limited", "paper behind a paywall"]


class CoderAgent(BaseAgent):
    role = "coder"
    stage = "code"
    think = (0.5, 1.2)
    work = (1.5, 3.0)
    verbs = ("implementing", "refactoring")

    def block_reasons(self) -> List[str]:
        return ["waiting for the build", "merge conflict"]


class ReviewerAgent(BaseAgent):
    role = "reviewer"
    stage = "review"
    think = (0.3, 0.7)
    work = (0.8, 1.8)
    block_chance = 0.05
    verbs = ("reviewing",)

    def block_reasons(self) -> List[str]:
        return ["waiting for the author's answer"]


class TesterAgent(BaseAgent):
    role = "tester"
    stage = "test"
    think = (0.2, 0.6)
    work = (1.0, 2.2)
    block_chance = 0.1
    verbs = ("running the suite", "fuzzing")

    def block_reasons(self) -> List[str]:
        return ["flaky test, re-running", "test environment busy"]


AGENT_CLASSES = (ResearcherAgent, CoderAgent, ReviewerAgent, TesterAgent)
