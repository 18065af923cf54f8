"""The FTP tab's F1 page: the two-pane browser, FTP's two connections and reply codes, the keys."""

FTP_TAB_HELP = """\
# FTP — the file server (ftp 文件服务器, the exercise of course 3.2 多任务并发模型)

A two-pane browser: **your disk on the left, the FTP server on the right**.
It talks to the workbench's own FTP server by default, and to any FTP server
(host, port, user and password at the top; anonymous when the user is empty).
On the workbench's own server **anonymous reads everywhere and writes (upload,
new folder, rename, delete) inside `uploads/` only**; named accounts from a
users file may write everywhere. The line under the Remote title says what the
current login may do.

FTP keeps **two connections**: a *control* connection where commands and
three-digit replies travel (`RETR file` → `150`, then `226`), and a fresh *data*
connection for each listing or file (passive mode: the server opens a port with
`PASV`/`EPSV`, the client connects). The reply code says what happened:
`2xx` done, `3xx` more needed, `4xx` try again later, `5xx` refused
(`550` no such file or no permission, `530` not logged in).

Every transfer opens its own control connection, so you can keep browsing while
it runs; watch the server's connection count climb in the **Servers** tab and see
how each concurrency model (threads, processes, pool…) serves them. Under the
event-loop models (select, poll, epoll, asyncio) the loop handles the control connections
and each data transfer runs in a thread of its own, so *Thr* reads `2+3` while one
file moves. To serve read-only or with accounts, select the ftp row there, press
**m** and tick *Read-only* or give a *Users file*.

| Key | Action |
|---|---|
| Enter / Backspace | open folder / go up (a click on the highlighted row opens it too) |
| Home / End | first / last row |
| letters | jump to the first name starting with them (`/` first when a name starts with a command key: d, u, m, r, x) |
| path box | type a path at the top of a pane, Enter goes there |
| Tab | next stop: each pane's path box and list, then the connection bar |
| `d` | download the remote file under the cursor into the local folder |
| `u` | upload the local file under the cursor into the remote folder |
| `m` | new folder (in the pane you are in) |
| `r` | rename |
| `Delete` | delete (asks first; a folder goes with its contents) |
| `x` | cancel the running transfer |
| `Ctrl+R` | refresh both panes |

Existing files are never overwritten without asking, and a cancelled or failed
transfer leaves no half-written file behind. A downloaded file keeps the
server's modification time (asked with `MDTM`).

**Limit** (KiB/s, empty for none) holds each transfer to that speed, so a
class can watch one move: the bottom line shows bytes, speed and ETA. The
server has the same knob for every client: `--max-rate` (KiB/s per transfer).
"""
