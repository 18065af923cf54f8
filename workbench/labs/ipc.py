"""IPC lab: messages between processes through a multiprocessing Queue and a Pipe, their rates, and a queue filling up (course 2.2.5)."""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from workbench.labs.base import Lab, LabContext, Param

#: Every message carries this many bytes of payload, besides its number.
_PAYLOAD = b"x" * 64
#: How often the fill experiment samples qsize().
_SAMPLE_EVERY_S = 0.1
#: A producer whose consumer stopped listening gives up after this long.
_PATIENCE_S = 30.0


def produce_to_queue(out: multiprocessing.Queue, count: int) -> None:
    """Put ``count`` messages as fast as possible, then the time the puts took, then None."""
    started = time.perf_counter()
    for number in range(count):
        out.put((number, _PAYLOAD))
    out.put(("put_s", time.perf_counter() - started))
    out.put(None)


def produce_to_pipe(end: Connection, count: int) -> None:
    """Send ``count`` messages down a Pipe as fast as the reader takes them, then None."""
    started = time.perf_counter()
    for number in range(count):
        end.send((number, _PAYLOAD))
    end.send(("put_s", time.perf_counter() - started))
    end.send(None)
    end.close()


def produce_paced(out: multiprocessing.Queue, rate: int, seconds: float) -> None:
    """Put ``rate`` messages a second for ``seconds``, in 10 ms batches, then None."""
    started = time.monotonic()
    sent = 0
    parent = os.getppid()
    while (elapsed := time.monotonic() - started) < seconds and os.getppid() == parent:
        due = int(elapsed * rate)
        for number in range(sent, due):
            out.put((number, _PAYLOAD))
        sent = max(sent, due)
        time.sleep(0.01)
    out.put(None)


def queue_size(shared: multiprocessing.Queue) -> int | None:
    """qsize(), or None where the OS lacks it (macOS has no sem_getvalue)."""
    try:
        return shared.qsize()
    except NotImplementedError:
        return None


class QueuePipeLab(Lab):
    name = "queue-pipe"
    title = "Message queues between processes: Queue and Pipe rates, and a queue filling up"
    course_term = "进程通信 (消息队列)"
    course_section = "2.2.5"
    order = 2.25
    explanation = (
        "Processes share no memory, so they talk through the kernel. multiprocessing.Queue is "
        "the course's 消息队列: put() pickles a message into a buffer that a background 'feeder' "
        "thread writes into a pipe; get() in the other process reads and unpickles it. A Pipe "
        "(two Connection ends; beyond the course text) is the bare channel underneath, with no "
        "feeder thread or lock, so it usually moves more messages per second — the lab measures "
        "both with a producer child process. Then a producer puts at a steady rate while the "
        "consumer (the lab) takes them, pauses, and resumes: qsize() stays near 0, climbs while "
        "nobody reads — the queue holds what the consumer has not taken — and drains after the "
        "resume. qsize() is approximate, and on macOS it raises NotImplementedError."
    )
    params = (
        Param("messages", 20000, "messages for each rate test", minimum=100, maximum=200000),
        Param("rate", 2000, "messages per second during the fill test", minimum=100, maximum=20000),
        Param("pause", 0.6, "seconds the consumer pauses", minimum=0.1, maximum=3.0),
    )

    def run(self, ctx: LabContext) -> None:
        # spawn: a fresh interpreter per producer, safe whatever threads this process has.
        context = multiprocessing.get_context("spawn")
        count = int(ctx["messages"])
        queue_rates = self._queue_rate(context, count)
        ctx.line(
            f"Queue: a child put {count:,} messages at {queue_rates[0]:,.0f}/s (put() only "
            f"hands them to its feeder thread); the lab got them at {queue_rates[1]:,.0f}/s"
        )
        if ctx.cancelled:
            return
        pipe_rates = self._pipe_rate(context, count)
        ctx.line(
            f"Pipe: a child sent {count:,} messages at {pipe_rates[0]:,.0f}/s; the lab received "
            f"them at {pipe_rates[1]:,.0f}/s"
        )
        if ctx.cancelled:
            return
        samples = self._fill(ctx, context, int(ctx["rate"]), float(ctx["pause"]))
        ctx.table("qsize over time", ("t (s)", "consumer", "qsize"), samples)

        ctx.figure("queue_puts_per_s", "Queue puts per second", round(queue_rates[0]))
        ctx.figure("queue_gets_per_s", "Queue gets per second", round(queue_rates[1]))
        ctx.figure("pipe_sends_per_s", "Pipe sends per second", round(pipe_rates[0]))
        ctx.figure("pipe_recvs_per_s", "Pipe receives per second", round(pipe_rates[1]))
        sizes = {
            state: [int(size) for _, s, size in samples if s == state and size != "n/a"]
            for state in ("consuming", "paused", "resumed")
        }
        if not any(sizes.values()):
            ctx.verdict(
                f"Queue {queue_rates[1]:,.0f} msgs/s, Pipe {pipe_rates[1]:,.0f} msgs/s; qsize() is "
                f"not available on {sys.platform}, so the fill could not be watched"
            )
            return
        before = max(sizes["consuming"], default=0)
        peak = max(sizes["paused"], default=0)
        after = sizes["resumed"][-1] if sizes["resumed"] else 0
        ctx.figure("qsize_max_consuming", "qsize at most while consuming", before)
        ctx.figure("qsize_max_paused", "qsize at most while paused", peak)
        ctx.figure("qsize_end", "qsize at the end, after resuming", after)
        faster = "Pipe" if pipe_rates[1] > queue_rates[1] else "Queue"
        ctx.verdict(
            f"the consumer got {queue_rates[1]:,.0f} msgs/s from a Queue and "
            f"{pipe_rates[1]:,.0f} msgs/s from a Pipe ({faster} faster, "
            f"×{max(pipe_rates[1], queue_rates[1]) / min(pipe_rates[1], queue_rates[1]):.1f}); "
            f"while it paused, qsize rose from ≤{before} to {peak}, and after it resumed it "
            f"fell back to {after}"
        )

    @staticmethod
    def _queue_rate(context: Any, count: int) -> tuple[float, float]:
        channel = context.Queue()
        producer = context.Process(target=produce_to_queue, args=(channel, count), name="producer")
        producer.start()
        try:
            first = channel.get(timeout=_PATIENCE_S)  # the clock starts at the first message
            started = time.perf_counter()
            received = 1
            put_s = None
            while (message := channel.get(timeout=_PATIENCE_S)) is not None:
                if message[0] == "put_s":
                    put_s = message[1]
                else:
                    received += 1
            got_s = time.perf_counter() - started
            del first
        finally:
            _stop(producer)
            channel.close()
            channel.join_thread()
        if received != count or put_s is None:
            raise RuntimeError(f"the Queue delivered {received} of {count} messages")
        return count / put_s, (count - 1) / got_s

    @staticmethod
    def _pipe_rate(context: Any, count: int) -> tuple[float, float]:
        reader, writer = context.Pipe(duplex=False)
        producer = context.Process(target=produce_to_pipe, args=(writer, count), name="producer")
        producer.start()
        writer.close()  # the child holds the only writing end now: EOF if it dies
        try:
            if not reader.poll(_PATIENCE_S):
                raise TimeoutError("the Pipe producer sent nothing")
            reader.recv()
            started = time.perf_counter()
            received = 1
            put_s = None
            while (message := reader.recv()) is not None:
                if message[0] == "put_s":
                    put_s = message[1]
                else:
                    received += 1
            got_s = time.perf_counter() - started
        finally:
            reader.close()
            _stop(producer)
        if received != count or put_s is None:
            raise RuntimeError(f"the Pipe delivered {received} of {count} messages")
        return count / put_s, (count - 1) / got_s

    @staticmethod
    def _fill(ctx: LabContext, context: Any, rate: int, pause: float) -> list[tuple[str, str, str]]:
        phases = (("consuming", 0.5), ("paused", pause), ("resumed", 0.5))
        channel = context.Queue()
        producer = context.Process(
            target=produce_paced,
            args=(channel, rate, sum(length for _, length in phases) + 0.3),
            name="paced-producer",
        )
        producer.start()
        samples: list[tuple[str, str, str]] = []
        try:
            channel.get(timeout=_PATIENCE_S)  # the producer is up and putting
            started = next_sample = time.monotonic()
            for state, length in phases:
                ctx.line(
                    f"the consumer {'pauses' if state == 'paused' else 'takes messages'} "
                    f"for {length:g} s while the producer puts {rate:,}/s"
                )
                phase_end = time.monotonic() + length
                while (now := time.monotonic()) < phase_end:
                    if now >= next_sample:
                        size = queue_size(channel)
                        samples.append(
                            (f"{now - started:.1f}", state, "n/a" if size is None else str(size))
                        )
                        next_sample += _SAMPLE_EVERY_S
                    if state == "paused":
                        time.sleep(0.005)
                        continue
                    try:
                        channel.get(timeout=0.005)
                    except queue.Empty:
                        pass
            # Drain to the end so the producer's feeder thread can flush and the child exit.
            while channel.get(timeout=_PATIENCE_S) is not None:
                pass
        finally:
            _stop(producer)
            channel.close()
            channel.join_thread()
        return samples


def _stop(process: multiprocessing.process.BaseProcess) -> None:
    process.join(timeout=5)
    if process.is_alive():
        process.kill()
        process.join()


LABS = (QueuePipeLab(),)
