/*
 * The runtime protocol's codec: every message round-trips, every malformed one is -EPROTO,
 * and the bytes are those docs/PROTOCOL.md (part 2) gives to other languages' workers.
 */
#include "harness.h"
#include "proto.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>

/* A HELLO with every field set to something whose bytes are all different. */
static const struct fdp_proto_hello hello = {1, 0x04030201, 0x08070605};

static struct sockaddr_in ipv4_peer(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(8080)};

	sin.sin_addr.s_addr = htonl(0x7f000001);
	return sin;
}

TEST(hello_round_trips)
{
	unsigned char buf[FDP_PROTO_HELLO_SIZE];
	struct fdp_proto_hello h;

	CHECK_INT(fdp_proto_hello_encode(buf, &hello), ==, FDP_PROTO_HELLO_SIZE);
	CHECK_OK(fdp_proto_hello_decode(buf, sizeof(buf), &h));
	CHECK_INT(h.version, ==, hello.version);
	CHECK_INT(h.index, ==, hello.index);
	CHECK_INT(h.generation, ==, hello.generation);
}

TEST(hello_shorter_than_16_bytes_is_refused)
{
	unsigned char buf[FDP_PROTO_HELLO_SIZE];
	struct fdp_proto_hello h;

	fdp_proto_hello_encode(buf, &hello);
	for (size_t len = 0; len < sizeof(buf); len++)
		CHECK_INT(fdp_proto_hello_decode(buf, len, &h), ==, -EPROTO);
}

TEST(hello_longer_than_16_bytes_decodes_its_first_16)
{
	/* A newer master may append fields: this worker reads the ones it knows. */
	unsigned char buf[FDP_PROTO_HELLO_SIZE + 8];
	struct fdp_proto_hello h;

	memset(buf, 0xee, sizeof(buf));
	fdp_proto_hello_encode(buf, &hello);
	CHECK_OK(fdp_proto_hello_decode(buf, sizeof(buf), &h));
	CHECK_INT(h.version, ==, hello.version);
	CHECK_INT(h.index, ==, hello.index);
	CHECK_INT(h.generation, ==, hello.generation);
}

TEST(ready_round_trips)
{
	unsigned char buf[FDP_PROTO_READY_SIZE];
	uint32_t pid = 0;

	CHECK_INT(fdp_proto_ready_encode(buf, 0xfedcba98), ==, FDP_PROTO_READY_SIZE);
	CHECK_OK(fdp_proto_ready_decode(buf, sizeof(buf), &pid));
	CHECK_INT(pid, ==, 0xfedcba98);
}

TEST(ready_of_any_other_length_is_refused)
{
	unsigned char buf[16] = {0};
	uint32_t pid;

	for (size_t len = 0; len <= sizeof(buf); len++)
		if (len != FDP_PROTO_READY_SIZE)
			CHECK_INT(fdp_proto_ready_decode(buf, len, &pid), ==, -EPROTO);
}

/* Encode a CONN with this peer, decode it, and check that every field came back. */
static void conn_round_trip(const void *peer, socklen_t peer_len)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	struct fdp_conn c;
	size_t len = fdp_proto_conn_encode(buf, 0x1122334455667788, 3, 2, peer, peer_len);

	CHECK_INT(len, ==, FDP_PROTO_CONN_HEADER + peer_len);
	CHECK_OK(fdp_proto_conn_decode(buf, len, &c));
	CHECK(c.id == 0x1122334455667788);
	CHECK_INT(c.listener, ==, 3);
	CHECK_INT(c.tag, ==, 2);
	CHECK_INT(c.peer_len, ==, peer_len);
	CHECK(peer_len == 0 || memcmp(&c.peer, peer, peer_len) == 0); /* memcmp wants no NULL */
}

TEST(conn_round_trips_an_ipv4_peer)
{
	struct sockaddr_in sin = ipv4_peer();

	conn_round_trip(&sin, sizeof(sin));
}

TEST(conn_round_trips_an_ipv6_peer)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};

	sin6.sin6_addr = in6addr_loopback;
	sin6.sin6_flowinfo = htonl(0x12345);
	sin6.sin6_scope_id = 7;
	conn_round_trip(&sin6, sizeof(sin6));
}

TEST(conn_round_trips_without_a_peer)
{
	conn_round_trip(NULL, 0);
}

TEST(conn_shorter_than_its_header_is_refused)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	struct fdp_conn c;

	fdp_proto_conn_encode(buf, 1, 0, 0, NULL, 0);
	for (size_t len = 0; len < FDP_PROTO_CONN_HEADER; len++)
		CHECK_INT(fdp_proto_conn_decode(buf, len, &c), ==, -EPROTO);
}

TEST(conn_with_peer_len_past_the_payload_is_refused)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	struct sockaddr_in sin = ipv4_peer();
	struct fdp_conn c;
	size_t len = fdp_proto_conn_encode(buf, 1, 0, 0, &sin, sizeof(sin));

	/* Any payload cut short of the peer it announces: the decoder must not read past it. */
	for (size_t cut = 1; cut <= sizeof(sin); cut++)
		CHECK_INT(fdp_proto_conn_decode(buf, len - cut, &c), ==, -EPROTO);
}

TEST(conn_with_peer_len_past_sockaddr_storage_is_refused)
{
	/* The payload holds every byte peer_len announces: only the size of c.peer is wrong. */
	unsigned char buf[FDP_PROTO_CONN_MAX + 1] = {0};
	struct fdp_conn c;

	fdp_proto_conn_encode(buf, 1, 0, 0, NULL, 0);
	buf[12] = (unsigned char)(sizeof(struct sockaddr_storage) + 1);
	buf[13] = (unsigned char)((sizeof(struct sockaddr_storage) + 1) >> 8);
	CHECK_INT(fdp_proto_conn_decode(buf, sizeof(buf), &c), ==, -EPROTO);
}

TEST(conn_encode_of_a_peer_longer_than_sockaddr_storage_sends_none)
{
	unsigned char peer[sizeof(struct sockaddr_storage) + 1] = {0};
	unsigned char buf[FDP_PROTO_CONN_MAX];
	struct fdp_conn c;
	size_t len = fdp_proto_conn_encode(buf, 9, 0, 0, peer, sizeof(peer));

	CHECK_INT(len, ==, FDP_PROTO_CONN_HEADER);
	CHECK_INT(buf[12] | buf[13] << 8, ==, 0);
	CHECK_OK(fdp_proto_conn_decode(buf, len, &c));
	CHECK(c.id == 9);
	CHECK_INT(c.peer_len, ==, 0);
}

/* Encode n ids, count them and read each one back. */
static void ids_round_trip(size_t n)
{
	static uint64_t ids[FDP_PROTO_MAX_IDS];
	static unsigned char buf[8 * FDP_PROTO_MAX_IDS];

	/* Every id uses its high bytes too, so that a truncation to 32 bits shows. */
	for (size_t i = 0; i < n; i++)
		ids[i] = ((uint64_t)(i + 1) << 40) | (i + 1);
	CHECK_INT(fdp_proto_ids_encode(buf, ids, n), ==, 8 * n);
	CHECK_INT(fdp_proto_ids_count(buf, 8 * n), ==, n);
	for (size_t i = 0; i < n; i++)
		CHECK(fdp_proto_id(buf, i) == ids[i]);
}

TEST(ids_round_trip_one_id)
{
	ids_round_trip(1);
}

TEST(ids_round_trip_512_ids)
{
	ids_round_trip(FDP_PROTO_MAX_IDS);
}

TEST(ids_of_none_are_refused)
{
	unsigned char buf[8] = {0};

	CHECK_INT(fdp_proto_ids_count(buf, 0), ==, -EPROTO);
	CHECK_INT(fdp_proto_check(FDP_PROTO_ACK, buf, 0, 0), ==, -EPROTO);
}

TEST(ids_of_513_are_refused)
{
	static unsigned char buf[8 * (FDP_PROTO_MAX_IDS + 1)];

	CHECK_INT(fdp_proto_ids_count(buf, sizeof(buf)), ==, -EPROTO);
	CHECK_INT(fdp_proto_check(FDP_PROTO_DONE, buf, sizeof(buf), 0), ==, -EPROTO);
}

TEST(ids_length_not_a_multiple_of_8_is_refused)
{
	unsigned char buf[32] = {0};

	for (size_t len = 1; len <= sizeof(buf); len++)
		if (len % 8)
			CHECK_INT(fdp_proto_ids_count(buf, len), ==, -EPROTO);
}

TEST(check_refuses_a_conn_without_exactly_one_descriptor)
{
	unsigned char buf[FDP_PROTO_CONN_MAX];
	size_t len = fdp_proto_conn_encode(buf, 1, 0, 0, NULL, 0);

	CHECK_INT(fdp_proto_check(FDP_PROTO_CONN, buf, len, 1), ==, 0);
	CHECK_INT(fdp_proto_check(FDP_PROTO_CONN, buf, len, 0), ==, -EPROTO);
	CHECK_INT(fdp_proto_check(FDP_PROTO_CONN, buf, len, 2), ==, -EPROTO);
}

/* A well-formed payload of type passes with no descriptors and is refused with any. */
static void check_refuses_descriptors(unsigned type, const void *payload, size_t len)
{
	CHECK_INT(fdp_proto_check(type, payload, len, 0), ==, 0);
	CHECK_INT(fdp_proto_check(type, payload, len, 1), ==, -EPROTO);
	CHECK_INT(fdp_proto_check(type, payload, len, 2), ==, -EPROTO);
}

TEST(check_refuses_descriptors_on_every_type_but_conn)
{
	unsigned char hello_buf[FDP_PROTO_HELLO_SIZE], ready[FDP_PROTO_READY_SIZE], ids[8];
	uint64_t id = 1;

	fdp_proto_hello_encode(hello_buf, &hello);
	fdp_proto_ready_encode(ready, 4242);
	fdp_proto_ids_encode(ids, &id, 1);
	check_refuses_descriptors(FDP_PROTO_HELLO, hello_buf, sizeof(hello_buf));
	check_refuses_descriptors(FDP_PROTO_READY, ready, sizeof(ready));
	check_refuses_descriptors(FDP_PROTO_ACK, ids, sizeof(ids));
	check_refuses_descriptors(FDP_PROTO_DONE, ids, sizeof(ids));
	check_refuses_descriptors(FDP_PROTO_DRAIN, NULL, 0);
}

TEST(listen_round_trips)
{
	struct fdp_proto_listen in = {.listener = 3,
	                              .tag = 2,
	                              .slot = 1023,
	                              .state_size = 49160,
	                              .flags = FDP_PROTO_LISTEN_STEAL},
	                        out;
	unsigned char buf[FDP_PROTO_LISTEN_SIZE];

	CHECK_INT(fdp_proto_listen_encode(buf, &in), ==, FDP_PROTO_LISTEN_SIZE);
	CHECK_OK(fdp_proto_listen_decode(buf, sizeof(buf), &out));
	CHECK_INT(out.listener, ==, 3);
	CHECK_INT(out.tag, ==, 2);
	CHECK_INT(out.slot, ==, 1023);
	CHECK_INT(out.state_size, ==, 49160);
	CHECK_INT(out.flags, ==, FDP_PROTO_LISTEN_STEAL);
	/* An older master's 12 bytes: no flags. */
	CHECK_OK(fdp_proto_listen_decode(buf, 12, &out));
	CHECK_INT(out.flags, ==, 0);
}

TEST(listen_shorter_than_12_bytes_is_refused_and_needs_two_descriptors)
{
	struct fdp_proto_listen l = {0};
	unsigned char buf[FDP_PROTO_LISTEN_SIZE];

	fdp_proto_listen_encode(buf, &l);
	CHECK_INT(fdp_proto_listen_decode(buf, 11, &l), ==, -EPROTO);
	CHECK_INT(fdp_proto_fds(FDP_PROTO_LISTEN), ==, 2);
	CHECK_INT(fdp_proto_check(FDP_PROTO_LISTEN, buf, sizeof(buf), 2), ==, 0);
	CHECK_INT(fdp_proto_check(FDP_PROTO_LISTEN, buf, sizeof(buf), 1), ==, -EPROTO);
	CHECK_INT(fdp_proto_check(FDP_PROTO_LISTEN, buf, 11, 2), ==, -EPROTO);
}

TEST(accepts_is_4_bytes_with_no_descriptor)
{
	unsigned char buf[FDP_PROTO_ACCEPTS_SIZE];

	CHECK_INT(fdp_proto_accepts_encode(buf, 0), ==, 4);
	check_refuses_descriptors(FDP_PROTO_ACCEPTS, buf, sizeof(buf));
	CHECK_INT(fdp_proto_check(FDP_PROTO_ACCEPTS, buf, 3, 0), ==, -EPROTO);
}

TEST(check_passes_unknown_types_with_any_payload_and_descriptors)
{
	/* A newer peer may say more: its messages are skipped, not taken for an attack. */
	static const unsigned types[] = {0, 0xff, 0x109, 0x1ff, 0xffff};
	unsigned char junk[7] = {0xff, 0, 1, 2, 3, 4, 5};

	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		CHECK_INT(fdp_proto_fds(types[t]), ==, -1);
		for (size_t nfds = 0; nfds <= 3; nfds++) {
			CHECK_INT(fdp_proto_check(types[t], NULL, 0, nfds), ==, 0);
			CHECK_INT(fdp_proto_check(types[t], junk, sizeof(junk), nfds), ==, 0);
		}
	}
}

TEST(conn_bytes_match_the_documented_layout)
{
	/* docs/PROTOCOL.md, CONN: u64 id, u16 listener, u16 tag, u16 peer_len, u16 zero, peer. */
	static const unsigned char header[FDP_PROTO_CONN_HEADER] = {
	        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* id */
	        0x0b, 0x0a,                                     /* listener */
	        0x0d, 0x0c,                                     /* tag */
	        0x10, 0x00,                                     /* peer_len: a sockaddr_in */
	        0x00, 0x00,                                     /* zero */
	};
	static const unsigned char port_addr[6] = {0x1f, 0x90, 0x7f, 0x00, 0x00, 0x01};
	struct sockaddr_in sin = ipv4_peer();
	unsigned char buf[FDP_PROTO_CONN_MAX];

	memset(buf, 0xff, sizeof(buf)); /* so that a field left unwritten shows */
	CHECK_INT(fdp_proto_conn_encode(buf, 0x0102030405060708, 0x0a0b, 0x0c0d, &sin, sizeof(sin)),
	          ==, 32);
	CHECK(memcmp(buf, header, sizeof(header)) == 0);
	/* The peer as accept() gave it: sa_family in native order, port and address in network. */
	CHECK(memcmp(buf + 16, &sin.sin_family, 2) == 0);
	CHECK(memcmp(buf + 18, port_addr, sizeof(port_addr)) == 0);
	CHECK(memcmp(buf + 16, &sin, sizeof(sin)) == 0);
}

TEST(hello_bytes_match_the_documented_layout)
{
	/* docs/PROTOCOL.md, HELLO: u16 version, u16 zero, u32 index, u32 generation, u32 zero. */
	static const unsigned char want[FDP_PROTO_HELLO_SIZE] = {
	        0x01, 0x00, 0x00, 0x00, /* version, zero */
	        0x01, 0x02, 0x03, 0x04, /* index */
	        0x05, 0x06, 0x07, 0x08, /* generation */
	        0x00, 0x00, 0x00, 0x00, /* zero */
	};
	unsigned char buf[FDP_PROTO_HELLO_SIZE];

	memset(buf, 0xff, sizeof(buf)); /* so that a field left unwritten shows */
	fdp_proto_hello_encode(buf, &hello);
	CHECK(memcmp(buf, want, sizeof(want)) == 0);
}
