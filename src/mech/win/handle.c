/*
 * The mechanism on Windows (include/fdpass_win.h): channels over named pipes, fdpass's own
 * frames on them, sockets handed over by WSADuplicateSocketW() and other handles by
 * DuplicateHandle() into the peer, whose process id comes from the pipe itself.
 *
 * Every pipe is opened for overlapped I/O, so that each read, write and connect can be
 * waited for with a limit; the functions here still block their caller until the operation
 * ends (a channel is used by one thread at a time).
 */
#include "fdpass_win.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A frame: "FDW1", the byte count, the object count, then each object, then the bytes. */
#define FRAME_MAGIC "FDW1"
#define HEADER_LEN  12
#define OBJ_HEAD    8 /* u16 kind, u16 zero, u32 payload size */

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static unsigned get16(const unsigned char *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int fdp_win_error(DWORD err)
{
	switch (err) {
	case ERROR_BROKEN_PIPE:
	case ERROR_NO_DATA:
	case ERROR_PIPE_NOT_CONNECTED:
	case ERROR_HANDLE_EOF:
		return -EPIPE;
	case ERROR_FILE_NOT_FOUND:
	case ERROR_PATH_NOT_FOUND:
		return -ENOENT;
	case ERROR_ACCESS_DENIED:
		return -EACCES;
	case ERROR_NOT_ENOUGH_MEMORY:
	case ERROR_OUTOFMEMORY:
		return -ENOMEM;
	case ERROR_INVALID_HANDLE:
	case ERROR_INVALID_PARAMETER:
	case WSAENOTSOCK:
	case WSAEINVAL:
		return -EINVAL;
	case WAIT_TIMEOUT:
	case ERROR_SEM_TIMEOUT:
		return -ETIMEDOUT;
	case ERROR_PIPE_BUSY:
		return -EBUSY;
	case ERROR_ALREADY_EXISTS:
	case WSAEADDRINUSE:
		return -EADDRINUSE;
	case ERROR_FILENAME_EXCED_RANGE:
		return -ENAMETOOLONG;
	case WSAECONNRESET:
		return -ECONNRESET;
	case WSAECONNREFUSED:
		return -ECONNREFUSED;
	case WSAEMFILE:
	case ERROR_TOO_MANY_OPEN_FILES:
		return -EMFILE;
	default:
		return -EIO;
	}
}

int fdp_win_startup(void)
{
	WSADATA d;

	return WSAStartup(MAKEWORD(2, 2), &d) == 0 ? 0 : -EIO;
}

/* Wait for an overlapped operation started on h; on timeout it is cancelled. */
static int finish(HANDLE h, OVERLAPPED *ov, BOOL started, int timeout_ms, DWORD *done)
{
	DWORD err = started ? ERROR_SUCCESS : GetLastError();

	if (!started && err != ERROR_IO_PENDING)
		return fdp_win_error(err);
	if (!started || !GetOverlappedResult(h, ov, done, FALSE)) {
		DWORD w = WaitForSingleObject(ov->hEvent, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);

		if (w == WAIT_TIMEOUT) {
			CancelIoEx(h, ov);
			*done = 0;
			GetOverlappedResult(h, ov, done, TRUE); /* the cancel completes it */
			return -ETIMEDOUT;
		}
		if (!GetOverlappedResult(h, ov, done, FALSE))
			return fdp_win_error(GetLastError());
	}
	return 0;
}

/*
 * Read or write exactly len bytes on the pipe, waiting up to first_ms (-1: no limit) for the
 * first of them and as long as it takes for the rest.
 */
static int full_io(HANDLE h, void *buf, size_t len, int writing, int first_ms)
{
	OVERLAPPED ov;
	size_t off = 0;
	int err = 0;

	memset(&ov, 0, sizeof(ov));
	ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
	if (!ov.hEvent)
		return -ENOMEM;
	while (off < len && err == 0) {
		DWORD want = (DWORD)(len - off > 1 << 20 ? 1 << 20 : len - off), done = 0;
		char *p = (char *)buf + off;
		BOOL ok;

		ResetEvent(ov.hEvent);
		ok = writing ? WriteFile(h, p, want, NULL, &ov) : ReadFile(h, p, want, NULL, &ov);
		err = finish(h, &ov, ok, off ? -1 : first_ms, &done);
		if (err == -ETIMEDOUT && done) /* the cancel met bytes already read: go on */
			err = 0;
		if (err == 0 && done == 0)
			err = -EPIPE;
		off += done;
	}
	CloseHandle(ov.hEvent);
	return err;
}

static int pipe_path(const char *name, char *path, size_t size)
{
	int n = snprintf(path, size, "\\\\.\\pipe\\%s", name);

	return n < 0 || (size_t)n >= size || !*name ? -EINVAL : 0;
}

int fdp_win_pipe_create(const char *name, HANDLE *out)
{
	char path[256];
	HANDLE h;
	int err = pipe_path(name, path, sizeof(path));

	if (err < 0)
		return err;
	h = CreateNamedPipeA(path,
	                     PIPE_ACCESS_DUPLEX | FILE_FLAG_FIRST_PIPE_INSTANCE |
	                             FILE_FLAG_OVERLAPPED,
	                     PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
	                             PIPE_REJECT_REMOTE_CLIENTS,
	                     1, 65536, 65536, 0, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		DWORD e = GetLastError();

		return e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY ? -EADDRINUSE
		                                                         : fdp_win_error(e);
	}
	*out = h;
	return 0;
}

int fdp_win_pipe_accept(HANDLE pipe, int timeout_ms)
{
	OVERLAPPED ov;
	DWORD done;
	int err;

	memset(&ov, 0, sizeof(ov));
	ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
	if (!ov.hEvent)
		return -ENOMEM;
	if (ConnectNamedPipe(pipe, &ov) || GetLastError() == ERROR_PIPE_CONNECTED)
		err = 0; /* the client was there first */
	else
		err = finish(pipe, &ov, FALSE, timeout_ms, &done);
	CloseHandle(ov.hEvent);
	return err;
}

int fdp_win_pipe_serve(const char *name, int timeout_ms, HANDLE *out)
{
	int err = fdp_win_pipe_create(name, out);

	if (err == 0 && (err = fdp_win_pipe_accept(*out, timeout_ms)) < 0)
		CloseHandle(*out);
	return err;
}

int fdp_win_pipe_connect(const char *name, int timeout_ms, HANDLE *out)
{
	char path[256];
	DWORD start = GetTickCount();
	int err = pipe_path(name, path, sizeof(path));

	if (err < 0)
		return err;
	for (;;) {
		HANDLE h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
		                       FILE_FLAG_OVERLAPPED, NULL);
		DWORD e, left;

		if (h != INVALID_HANDLE_VALUE) {
			*out = h;
			return 0;
		}
		e = GetLastError();
		if (e != ERROR_PIPE_BUSY && e != ERROR_FILE_NOT_FOUND)
			return fdp_win_error(e);
		if (timeout_ms >= 0 && GetTickCount() - start >= (DWORD)timeout_ms)
			return e == ERROR_PIPE_BUSY ? -ETIMEDOUT : -ENOENT;
		if (e == ERROR_FILE_NOT_FOUND) {
			Sleep(5); /* not created yet: nothing to wait on but time */
			continue;
		}
		left = timeout_ms < 0 ? NMPWAIT_WAIT_FOREVER
		                      : (DWORD)timeout_ms - (GetTickCount() - start);
		if (!WaitNamedPipeA(path, left) && GetLastError() != ERROR_FILE_NOT_FOUND &&
		    GetLastError() != ERROR_SEM_TIMEOUT)
			return fdp_win_error(GetLastError());
	}
}

int fdp_win_peer_pid(HANDLE pipe, DWORD *pid)
{
	DWORD flags = 0;
	ULONG id = 0;
	BOOL ok;

	if (!GetNamedPipeInfo(pipe, &flags, NULL, NULL, NULL))
		return fdp_win_error(GetLastError());
	ok = flags & PIPE_SERVER_END ? GetNamedPipeClientProcessId(pipe, &id)
	                             : GetNamedPipeServerProcessId(pipe, &id);
	if (!ok)
		return fdp_win_error(GetLastError());
	*pid = id;
	return 0;
}

static void close_obj(struct fdp_win_obj *o)
{
	if (o->kind == FDP_WIN_SOCKET && o->sock != INVALID_SOCKET)
		closesocket(o->sock);
	else if (o->kind == FDP_WIN_HANDLE && o->handle && o->handle != INVALID_HANDLE_VALUE)
		CloseHandle(o->handle);
}

/* The payload size of an object of this kind on the wire. */
static size_t obj_size(unsigned kind)
{
	return kind == FDP_WIN_SOCKET ? sizeof(WSAPROTOCOL_INFOW) : 8;
}

int fdp_win_send(HANDLE pipe, const void *buf, size_t len, const struct fdp_win_obj *objs,
                 size_t nobjs)
{
	HANDLE target = NULL, made[FDP_WIN_MAX_OBJS];
	size_t nmade = 0, size = HEADER_LEN + len, off = HEADER_LEN;
	unsigned char *frame;
	DWORD pid;
	int err;

	if (len > FDP_WIN_MAX_BYTES || nobjs > FDP_WIN_MAX_OBJS || (!len && !nobjs) ||
	    (len && !buf) || (nobjs && !objs))
		return -EINVAL;
	for (size_t i = 0; i < nobjs; i++) {
		if (objs[i].kind != FDP_WIN_SOCKET && objs[i].kind != FDP_WIN_HANDLE)
			return -EINVAL;
		size += OBJ_HEAD + obj_size(objs[i].kind);
	}
	err = fdp_win_peer_pid(pipe, &pid);
	if (err < 0)
		return err;
	frame = malloc(size);
	if (!frame)
		return -ENOMEM;
	memcpy(frame, FRAME_MAGIC, 4);
	put32(frame + 4, (uint32_t)len);
	put16(frame + 8, (unsigned)nobjs);
	put16(frame + 10, 0);
	for (size_t i = 0; i < nobjs && err == 0; i++) {
		unsigned char *p = frame + off;

		put16(p, objs[i].kind);
		put16(p + 2, 0);
		put32(p + 4, (uint32_t)obj_size(objs[i].kind));
		if (objs[i].kind == FDP_WIN_SOCKET) {
			WSAPROTOCOL_INFOW info;

			if (WSADuplicateSocketW(objs[i].sock, pid, &info) != 0)
				err = fdp_win_error((DWORD)WSAGetLastError());
			else
				memcpy(p + OBJ_HEAD, &info, sizeof(info));
		} else {
			HANDLE remote = NULL;
			uint64_t v;

			if (!target)
				target = OpenProcess(PROCESS_DUP_HANDLE, FALSE, pid);
			if (!target ||
			    !DuplicateHandle(GetCurrentProcess(), objs[i].handle, target, &remote, 0,
			                     FALSE, DUPLICATE_SAME_ACCESS)) {
				err = fdp_win_error(GetLastError());
			} else {
				made[nmade++] = remote;
				v = (uint64_t)(uintptr_t)remote;
				for (int b = 0; b < 8; b++)
					p[OBJ_HEAD + b] = (unsigned char)(v >> (8 * b));
			}
		}
		off += OBJ_HEAD + obj_size(objs[i].kind);
	}
	if (err == 0) {
		if (len)
			memcpy(frame + off, buf, len);
		err = full_io(pipe, frame, size, 1, -1);
	}
	/*
	 * Not sent: the handles duplicated into the peer are closed there again. A socket's
	 * description cannot be taken back; the peer's system drops it when the peer exits.
	 */
	if (err < 0)
		for (size_t i = 0; i < nmade; i++)
			DuplicateHandle(target, made[i], NULL, NULL, 0, FALSE, DUPLICATE_CLOSE_SOURCE);
	if (target)
		CloseHandle(target);
	free(frame);
	return err;
}

/* Read and throw away n bytes of the frame (what did not fit). */
static int skip(HANDLE pipe, size_t n)
{
	char sink[4096];

	while (n) {
		size_t k = n < sizeof(sink) ? n : sizeof(sink);
		int err = full_io(pipe, sink, k, 0, -1);

		if (err < 0)
			return err;
		n -= k;
	}
	return 0;
}

int fdp_win_recv(HANDLE pipe, void *buf, size_t cap, struct fdp_win_obj *objs, size_t maxobjs,
                 size_t *nobjs, int timeout_ms)
{
	unsigned char head[HEADER_LEN];
	size_t n, len, got = 0;
	int err = full_io(pipe, head, sizeof(head), 0, timeout_ms), truncated = 0;

	*nobjs = 0;
	if (err < 0)
		return err; /* -EPIPE before a frame began is the end of the channel */
	len = get32(head + 4);
	n = get16(head + 8);
	if (memcmp(head, FRAME_MAGIC, 4) != 0 || len > FDP_WIN_MAX_BYTES || n > FDP_WIN_MAX_OBJS)
		return -EPROTO;
	for (size_t i = 0; i < n; i++) {
		unsigned char oh[OBJ_HEAD];
		union {
			WSAPROTOCOL_INFOW info;
			unsigned char value[8];
		} u;
		struct fdp_win_obj o = {0, INVALID_SOCKET, NULL};
		unsigned kind;

		err = full_io(pipe, oh, sizeof(oh), 0, -1);
		kind = get16(oh);
		if (err == 0 && ((kind != FDP_WIN_SOCKET && kind != FDP_WIN_HANDLE) ||
		                 get32(oh + 4) != obj_size(kind)))
			err = -EPROTO;
		if (err == 0)
			err = full_io(pipe, &u, obj_size(kind), 0, -1);
		if (err < 0)
			goto fail;
		o.kind = (enum fdp_win_kind)kind;
		if (kind == FDP_WIN_SOCKET) {
			o.sock = WSASocketW(FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO, FROM_PROTOCOL_INFO,
			                    &u.info, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
			if (o.sock == INVALID_SOCKET) {
				err = fdp_win_error((DWORD)WSAGetLastError());
				goto fail;
			}
		} else {
			uint64_t v = 0;

			for (int b = 0; b < 8; b++)
				v |= (uint64_t)u.value[b] << (8 * b);
			o.handle = (HANDLE)(uintptr_t)v;
		}
		if (got < maxobjs) {
			objs[got++] = o;
		} else {
			close_obj(&o); /* no room: closed, as a truncated SCM_RIGHTS message does */
			truncated = 1;
		}
	}
	err = full_io(pipe, buf, len < cap ? len : cap, 0, -1);
	if (err == 0 && len > cap) {
		err = skip(pipe, len - cap);
		truncated = 1;
	}
	if (err < 0)
		goto fail;
	*nobjs = got;
	return truncated ? -EMSGSIZE : (int)len;
fail:
	for (size_t i = 0; i < got; i++)
		close_obj(&objs[i]);
	return err == -EPIPE ? -EPROTO : err; /* the channel ended inside a frame */
}
