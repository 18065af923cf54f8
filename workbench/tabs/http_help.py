"""The HTTP tab's F1 page: the request builder, the load generator and Compare models, in the course's terms."""

HTTP_TAB_HELP = """\
## HTTP tester and load generator

**Request** — build a request like the course's HTTP anatomy: a *request line*
(method, target, version), *headers*, a *blank line*, then the *body*.

- Pick the method, edit the URL (it starts on the embedded HTTP server), put
  headers one per line as `Name: value`, and a body if the method takes one.
- **Ctrl+J** sends it, off the UI thread. The response shows the status line,
  the headers, the body (JSON and HTML highlighted), its size and the timings:
  *connect* (TCP handshake), *first byte* (server think time), *total*.
- **Raw** shows the exact bytes sent and received; `␍␊` marks each CRLF, so the
  blank line that ends the headers is visible.
- A long body is read to its end and every byte counted; the view keeps the first
  8 MiB and says so. **Ctrl+B** saves the whole body into the data folder's
  `downloads/` (the notification gives the full path).
- **History** lists this session's requests; select one to load and re-send it.
  If the builder holds edits you have not sent, it asks first (Keep editing / Replace).
- **Ctrl+O** copies the request as a `curl` command: sent to the terminal's
  clipboard with OSC 52, and shown in a box to select and copy by hand where the
  terminal ignores OSC 52 (tmux unless `set -g set-clipboard on`).

**Load** — runs the request in the builder many times, like `wrk`/`oha`:
a count *or* a duration, a number of concurrent connections, keep-alive on or off
(off pays a TCP handshake per request). **Ctrl+R** starts or stops; figures
update a few times a second: progress, requests/s, latency percentiles
(p50/p90/p99/p99.9/max), a latency histogram, status codes, errors by kind, and
fairness: answers per connection (min, max) and how many connections starved.
**Ctrl+S** exports the last result as JSON and CSV into the data folder's
`exports/` (the notification gives the full paths). Empty boxes take the
defaults: 10 connections, 1,000 requests; give seconds instead of requests to run
for a time. Up to 2,000 connections: each worker raises its own open-file limit
(the usual `ulimit -n` is 1024) up to the hard limit, so 1,100 connections take a
`select` server past its 1024 wall: the connections it refuses show as
*closed by server* (or *reset*) errors and as starved connections. Past the hard limit the extra ones are counted as
*too many open files (ulimit -n)*.

**Compare models** — restarts the embedded HTTP server under each ticked model, in
the list's order, and runs the same load against it, then draws req/s and p99 side
by side. A first visit ticks one model of each family (threads, pool, epoll,
asyncio, prefork); tick more with Space. The table shows how fairly each model
served its connections (answers per connection, min–max): a connection is
*starved* when it got under 10% of a fair share (answered requests / connections).
A model that starved any connection is never drawn as the best (its bars carry ✗):
percentiles only count the requests that were answered, so the iterative server
(3.1) looks fast to its one client while the others wait the whole run. The note
column says why. Presets:

- *static file*: little work per request, so what shows is each model's own
  overhead; the iterative server and the pool serve only some clients at a time.
- *`/api/sleep?ms=50`*: IO-bound. Waiting overlaps under threads and event loops;
  the iterative server serves one client at a time, so with keep-alive the first
  client keeps it and the others starve.
- *`/api/work?ms=20`*: CPU-bound. The GIL lets only one thread compute at a time,
  so threads do no better than one loop; processes (pool, prefork) use every core.

Afterwards the HTTP server is put back on the model it had before.
"""
