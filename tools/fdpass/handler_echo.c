/* The built-in echo handler: every byte a client sends comes back, until it closes. */
#include "serve.h"

static int echo_data(struct fdpass_conn *c)
{
	int r;

	/* A client that sends without reading: keep its bytes until its output drains. */
	if (fdpass_conn_output_full(c))
		return 0;
	r = fdpass_conn_write(c, c->in, c->inlen);
	c->inlen = 0;
	return r;
}

const struct fdpass_handler fdpass_handler_echo = {
        .name = "echo",
        .on_data = echo_data,
        .close_idle_on_drain =
                0, /* a stream has no request boundary: it ends when the client ends it */
};
