/*
 * fdpass on Windows: hand a socket, a file or a pipe to another process.
 *
 * Windows has no SCM_RIGHTS. A socket is handed over with WSADuplicateSocketW(), which
 * describes it (a WSAPROTOCOL_INFOW) for one target process, and the receiver makes its own
 * socket from that description with WSASocketW(FROM_PROTOCOL_INFO). Any other handle (a file,
 * a pipe) is duplicated into the target process with DuplicateHandle(), and its value there is
 * sent. Both need to know the receiver's process id: it is learned from the connection itself
 * (GetNamedPipeClientProcessId() or GetNamedPipeServerProcessId()), never taken from what the
 * peer says.
 *
 * A channel is one connection of a named pipe (\\.\pipe\NAME, byte mode), carrying fdpass's
 * own frames: each message is a header, the objects' descriptions, then the bytes
 * (docs/WINDOWS.md, "The wire format"). The conventions of fdpass.h hold: >= 0 on success and a
 * negative errno on failure (-EPIPE: the peer is gone, -EPROTO: not an fdpass frame, -EMSGSIZE,
 * -ENOMEM, -EINVAL, -EIO for what has no errno), nothing printed, handles not inheritable.
 *
 * Who owns what:
 *   - fdp_win_send() never takes the caller's objects: the caller closes them when it likes,
 *     as after sendmsg(). What it made for the receiver (a duplicate in its process, a
 *     socket's duplicate) belongs to the receiver from the moment it was made.
 *   - fdp_win_recv() returns every object it received as the caller's own. Objects that do not
 *     fit (more than maxobjs) are closed, and it returns -EMSGSIZE, as a truncated SCM_RIGHTS
 *     message closes what did not fit. A receiver that does not want an object closes it.
 *   - A receiver that dies before reading the message: the duplicates made in its process die
 *     with it (Windows closes a process's handles when it exits), and so do the socket
 *     descriptions (a description not yet made into a socket holds a reference the system
 *     drops with the target process).
 *   - A sender that dies after duplicating and before its message leaves: the duplicate lives
 *     in the receiver without the receiver knowing its value, until the receiver exits. A
 *     long-lived receiver that must not accumulate these talks only to senders it outlives
 *     briefly (a worker to its master, as fdpass serve does), or exits now and then.
 */
#ifndef FDPASS_WIN_H
#define FDPASS_WIN_H

#include <winsock2.h>
#include <windows.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FDP_WIN_MAX_OBJS  64      /* objects in one message */
#define FDP_WIN_MAX_BYTES 65536   /* bytes in one message */

enum fdp_win_kind {
	FDP_WIN_SOCKET = 1, /* a SOCKET: WSADuplicateSocketW() */
	FDP_WIN_HANDLE = 2, /* any other handle: DuplicateHandle(), same access */
};

/* One object handed over. */
struct fdp_win_obj {
	enum fdp_win_kind kind;
	SOCKET sock;   /* FDP_WIN_SOCKET */
	HANDLE handle; /* FDP_WIN_HANDLE */
};

/* WSAStartup(2.2): once per process before any socket call. Returns 0 or -EIO. */
int fdp_win_startup(void);

/*
 * The server end of a channel, in two steps so that the client can be started in between:
 * create the pipe \\.\pipe\NAME (its first instance only, so that a pipe another process made
 * first is refused, not joined), then wait up to timeout_ms (-1: no limit) for its one client.
 * fdp_win_pipe_create() returns 0 and sets *out (the caller closes it with CloseHandle()), or
 * -EADDRINUSE (the name exists), -EINVAL (a name too long or empty), -EIO;
 * fdp_win_pipe_accept() returns 0, -ETIMEDOUT, or -EIO. fdp_win_pipe_serve() does both.
 */
int fdp_win_pipe_create(const char *name, HANDLE *out);
int fdp_win_pipe_accept(HANDLE pipe, int timeout_ms);
int fdp_win_pipe_serve(const char *name, int timeout_ms, HANDLE *out);

/*
 * The client end: connect to \\.\pipe\NAME, waiting up to timeout_ms while it is busy or
 * not yet created. -ENOENT: no such pipe by then; -ETIMEDOUT: busy until then.
 */
int fdp_win_pipe_connect(const char *name, int timeout_ms, HANDLE *out);

/* The process id at the other end of a channel, as the system knows it. */
int fdp_win_peer_pid(HANDLE pipe, DWORD *pid);

/*
 * Send one message: len bytes (0..FDP_WIN_MAX_BYTES) and nobjs objects (0..FDP_WIN_MAX_OBJS,
 * at least one byte or object), each made for the channel's peer process. Blocking (it
 * returns once the pipe has taken the whole frame). The caller keeps its objects.
 */
int fdp_win_send(HANDLE pipe, const void *buf, size_t len, const struct fdp_win_obj *objs,
                 size_t nobjs);

/*
 * Receive one message: its bytes into buf (cap bytes; more is -EMSGSIZE, with the bytes that
 * fit kept and the rest of the frame read away), its objects into objs (*nobjs set; each now
 * the caller's, also with -EMSGSIZE). Waits up to timeout_ms (-1: no limit) for a message to
 * begin, then for the whole of it. Returns the number of bytes, -EPIPE at the end of the
 * channel, -ETIMEDOUT with nothing taken, -EPROTO when the channel ended inside a frame or
 * carried something that is not one (the channel is then of no more use).
 */
int fdp_win_recv(HANDLE pipe, void *buf, size_t cap, struct fdp_win_obj *objs, size_t maxobjs,
                 size_t *nobjs, int timeout_ms);

/* The last Win32 or Winsock error as a negative errno (what the functions above return). */
int fdp_win_error(DWORD err);

#ifdef __cplusplus
}
#endif

#endif /* FDPASS_WIN_H */
