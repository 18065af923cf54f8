"""Counter lab (course 2.3.7 进程线程的区别联系): a global in our HTTP server, under threads and under processes."""

from __future__ import annotations

import http.client
import json

from servers.launcher import LaunchError, running_server
from workbench.labs.base import Lab, LabContext, Param

MODELS = ("threads", "processes")


def fetch_counter(port: int) -> dict:
    """GET /api/counter on a new TCP connection; the decoded JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/api/counter", headers={"Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"/api/counter answered {response.status}: {body[:200]!r}")
        return json.loads(body)
    finally:
        connection.close()


class CounterLab(Lab):
    name = "counter"
    title = "One global counter: threads share it, each forked process has its own"
    course_term = "进程空间独立 / 线程使用全局变量通信"
    course_section = "2.3.7"
    explanation = (
        "Our HTTP server keeps a module-level global that GET /api/counter adds one to and "
        "answers. The lab starts the real server under the threads model (3.1.2 多线程并发) and "
        "under the processes model (3.1.1 多进程并发) and asks it K times, each on a new "
        "connection. Under threads every connection is served by a thread of the same process, "
        "so they all bump the same variable: 1, 2, 3 ... K, from one pid (线程使用全局变量通信). "
        "Under processes each connection gets a freshly forked child with its own copy of the "
        "memory, still 0: every answer is 1, from a different pid, and the parent's counter "
        "never moves (进程空间独立,数据互不干扰). Sharing state between processes needs the "
        "course's IPC (2.2.5 进程通信)."
    )
    order = 2.37
    params = (
        Param("requests", 5, "GET /api/counter calls per model, each a new connection", 2, 50),
    )

    def run(self, ctx: LabContext) -> None:
        count = int(ctx["requests"])
        answers: dict[str, list[dict]] = {}
        server_pids: dict[str, int | None] = {}
        for model in MODELS:
            if ctx.cancelled:
                ctx.line("cancelled")
                return
            try:
                with running_server("http", model, server_id=f"counter-lab-{model}") as server:
                    server_pids[model] = server.pid
                    ctx.line(
                        f"started our HTTP server under {model}: pid {server.pid}, port {server.port}"
                    )
                    answers[model] = []
                    for number in range(1, count + 1):
                        if ctx.cancelled:
                            break
                        answer = fetch_counter(server.port)
                        answers[model].append(answer)
                        ctx.line(
                            f"{model}: GET /api/counter (new connection #{number}) -> "
                            f"counter {answer['counter']} from pid {answer['pid']}"
                        )
                ctx.line(f"stopped the {model} server")
            except LaunchError as error:
                ctx.line(f"{model}: the server did not start: {error}")
                raise
        if ctx.cancelled:
            ctx.line("cancelled")
            return

        rows = []
        for index in range(count):
            row: list[object] = [index + 1]
            for model in MODELS:
                answer = answers[model][index]
                row += [answer["counter"], answer["pid"]]
            rows.append(tuple(row))
        ctx.table(
            "GET /api/counter, one new connection each",
            ("request", "threads: counter", "threads: pid", "processes: counter", "processes: pid"),
            rows,
        )
        summary = {}
        for model in MODELS:
            counters = [answer["counter"] for answer in answers[model]]
            pids = {answer["pid"] for answer in answers[model]}
            by_server = sum(1 for answer in answers[model] if answer["pid"] == server_pids[model])
            summary[model] = (counters, pids)
            ctx.figure(f"{model}_last_counter", f"{model}: last counter answered", counters[-1])
            ctx.figure(f"{model}_max_counter", f"{model}: highest counter answered", max(counters))
            ctx.figure(
                f"{model}_distinct_pids", f"{model}: different pids that answered", len(pids)
            )
            ctx.figure(
                f"{model}_answered_by_server_pid",
                f"{model}: answers from the server's own pid",
                by_server,
            )
        threads, processes = summary["threads"], summary["processes"]
        ctx.verdict(
            f"Under threads {count} requests counted {threads[0][0]} to {threads[0][-1]} "
            f"in {len(threads[1])} process(es): one shared global. Under processes they answered "
            f"{', '.join(str(c) for c in processes[0])} from {len(processes[1])} different "
            f"pid(s): each forked child incremented its own copy."
        )


LABS = (CounterLab(),)
