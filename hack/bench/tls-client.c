// The TLS benchmark's load generator (hack/bench/tls.mjs compiles and runs it): one thread, one
// epoll loop, CONNECTIONS connections kept in flight to 127.0.0.1:PORT for SECONDS, each one
// connect → handshake → … → close, then a new one in its place. Written in C on OpenSSL so that
// the client spends as little CPU per handshake as possible (no interpreter, no per-connection
// process): on a 2-core machine it shares a core with nothing but the backends.
//
//   tls-client PORT SNI MODE CONNECTIONS SECONDS [TLS_VERSION] [CIPHERSUITES]
//
// MODE
//   full    a full handshake every time (no session offered); after the handshake the client
//           reads until it has the server's first session ticket (TLS 1.3 sends them after the
//           handshake), as a client that keeps its connection would, then closes.
//   resume  the first connection makes a full handshake and waits for a ticket; every later
//           one offers the newest ticket received (TLS 1.3 PSK with (EC)DHE, or TLS 1.2
//           ticket resumption), counts whether the server resumed it, and closes right after
//           the handshake (a ticket the server sends then is not waited for).
//   bulk    after the handshake, sends "GET /bulk" (HTTP/1.1, Connection: close) and reads
//           until the server closes, counting the bytes received.
// The certificate chain is not verified (SSL_VERIFY_NONE), but the server's handshake
// signature is, as in every TLS handshake. TLS_VERSION: 1.2 or 1.3 (default: both offered).
//
// Prints one JSON object: handshakes completed, how many were resumptions, errors, bytes read,
// the seconds measured, and the protocol, cipher, key-exchange group and certificate key type
// of the first handshake (to check that two servers negotiated the same thing).

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { FULL, RESUME, BULK };
enum state { IDLE, HANDSHAKING, WAIT_TICKET, SEND_REQUEST, READ_BODY };

struct conn {
  int fd;
  SSL *ssl;
  enum state state;
  int got_ticket;
  double started;
};

static enum mode mode;
static SSL_CTX *ctx;
static struct sockaddr_in target;
static const char *sni;
static int epfd;
static SSL_SESSION *newest; // resume: the session offered by the next connection
static long long handshakes, resumed, errors, bytes, connects;
static char first[512];
static const char request_fmt[] = "GET /bulk HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n";
static char request[512];
static int request_len;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_new_session(SSL *ssl, SSL_SESSION *session) {
  struct conn *c = SSL_get_app_data(ssl);
  if (c != NULL) c->got_ticket = 1;
  if (mode != RESUME) return 0; // not kept: OpenSSL frees it
  if (newest != NULL) SSL_SESSION_free(newest);
  newest = session; // this reference is ours now
  return 1;
}

static void describe_first(SSL *ssl) {
  if (first[0]) return;
  const char *group = "?";
  int nid = SSL_get_negotiated_group(ssl);
  if (nid != 0 && nid != NID_undef) {
    const char *name = OBJ_nid2sn(nid);
    if (name == NULL) name = SSL_group_to_name(ssl, nid);
    if (name != NULL) group = name;
  }
  const char *key = "?";
  X509 *peer = SSL_get1_peer_certificate(ssl);
  if (peer != NULL) {
    EVP_PKEY *pk = X509_get0_pubkey(peer);
    if (pk != NULL) {
      switch (EVP_PKEY_get_base_id(pk)) {
        case EVP_PKEY_RSA: key = EVP_PKEY_get_bits(pk) == 2048 ? "RSA-2048" : "RSA"; break;
        case EVP_PKEY_EC: key = "ECDSA"; break;
        default: key = "other";
      }
    }
    X509_free(peer);
  }
  snprintf(first, sizeof first, "\"protocol\":\"%s\",\"cipher\":\"%s\",\"group\":\"%s\",\"certificate\":\"%s\"",
           SSL_get_version(ssl), SSL_get_cipher_name(ssl), group, key);
}

static void open_conn(struct conn *c);

static void close_conn(struct conn *c, int failed) {
  if (failed) errors++;
  if (c->ssl != NULL) {
    if (!failed) SSL_shutdown(c->ssl); // close_notify; the reply is not waited for
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) {
    // Reset rather than TIME_WAIT: tens of thousands of connections a run would exhaust ports.
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    c->fd = -1;
  }
}

static void open_conn(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0) { perror("socket"); exit(2); }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  connects++;
  if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
    close_conn(c, 1);
    c->state = IDLE; // refused: the main loop tries again on its next turn
    return;
  }
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_app_data(c->ssl, c);
  SSL_set_tlsext_host_name(c->ssl, sni);
  if (mode == RESUME && newest != NULL) {
    // A copy each time: OpenSSL's TLS 1.3 client treats a session object it resumed as spent,
    // and a server may send no new ticket after a resumption (Node's does not).
    SSL_SESSION *copy = SSL_SESSION_dup(newest);
    SSL_set_session(c->ssl, copy);
    SSL_SESSION_free(copy);
  }
  c->state = HANDSHAKING;
  c->got_ticket = 0;
  c->started = now();
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

/** The connection is done (its last SSL call ended it, or `failed`): a new one takes its place. */
static void replace_conn(struct conn *c, int failed) {
  ERR_clear_error();
  close_conn(c, failed);
  open_conn(c);
}

static int would_block(int ssl_error) {
  return ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE;
}

/** Runs the connection's state machine until it would block; replaces it when it is done. */
static void drive(struct conn *c) {
  static char buf[1 << 16];
  for (;;) {
    int r, e;
    switch (c->state) {
      case IDLE:
        return;
      case HANDSHAKING:
        r = SSL_connect(c->ssl);
        if (r == 1) {
          handshakes++;
          if (SSL_session_reused(c->ssl)) resumed++;
          describe_first(c->ssl);
          c->state = mode == BULK ? SEND_REQUEST : WAIT_TICKET;
          continue;
        }
        if (would_block(SSL_get_error(c->ssl, r))) return;
        replace_conn(c, 1);
        return;
      case WAIT_TICKET:
        // TLS 1.2 tickets come inside the handshake; TLS 1.3 ones right after it. A resumed
        // handshake need not wait: the ticket it used can be offered again (Node's server
        // sends no new ticket after a resumption, nginx's does).
        if (c->got_ticket || SSL_version(c->ssl) < TLS1_3_VERSION || SSL_session_reused(c->ssl)) {
          replace_conn(c, 0);
          return;
        }
        r = SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0) continue;
        if (would_block(SSL_get_error(c->ssl, r))) {
          if (c->got_ticket) continue;
          return;
        }
        replace_conn(c, 1);
        return;
      case SEND_REQUEST:
        r = SSL_write(c->ssl, request, request_len);
        if (r > 0) {
          c->state = READ_BODY;
          continue;
        }
        if (would_block(SSL_get_error(c->ssl, r))) return;
        replace_conn(c, 1);
        return;
      case READ_BODY:
        r = SSL_read(c->ssl, buf, sizeof buf);
        if (r > 0) {
          bytes += r;
          continue;
        }
        e = SSL_get_error(c->ssl, r);
        if (would_block(e)) return;
        // The server closing (close_notify or a plain FIN) ends a transfer normally.
        replace_conn(c, !(e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL));
        return;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: %s PORT SNI full|resume|bulk CONNECTIONS SECONDS [1.2|1.3] [CIPHERSUITES]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  sni = argv[2];
  mode = !strcmp(argv[3], "full") ? FULL : !strcmp(argv[3], "resume") ? RESUME : !strcmp(argv[3], "bulk") ? BULK : -1;
  if ((int)mode < 0) { fprintf(stderr, "unknown mode %s\n", argv[3]); return 2; }
  int n = atoi(argv[4]);
  double seconds = atof(argv[5]);
  const char *version = argc > 6 ? argv[6] : "";
  request_len = snprintf(request, sizeof request, request_fmt, sni);

  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_min_proto_version(ctx, !strcmp(version, "1.3") ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx, !strcmp(version, "1.2") ? TLS1_2_VERSION : TLS1_3_VERSION);
  if (argc > 7 && argv[7][0]) {
    if (!SSL_CTX_set_ciphersuites(ctx, argv[7]) && !SSL_CTX_set_cipher_list(ctx, argv[7])) { fprintf(stderr, "bad ciphersuites %s\n", argv[7]); return 2; }
  }
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

  memset(&target, 0, sizeof target);
  target.sin_family = AF_INET;
  target.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &target.sin_addr);

  epfd = epoll_create1(0);
  struct conn *conns = calloc(n, sizeof *conns);
  double t0 = now(), end = t0 + seconds;
  // resume: one full handshake first, so that every connection has a ticket to offer.
  int start_with = mode == RESUME ? 1 : n;
  for (int i = 0; i < start_with; i++) open_conn(&conns[i]);
  int opened = start_with;
  struct epoll_event events[256];
  while (now() < end) {
    if (opened < n && newest != NULL) {
      for (; opened < n; opened++) open_conn(&conns[opened]);
    }
    int k = epoll_wait(epfd, events, 256, 50);
    for (int i = 0; i < k; i++) drive(events[i].data.ptr);
    // A server that sends no ticket must not stall a connection: give up waiting after 1 s.
    double t = now();
    for (int i = 0; i < opened; i++) {
      if (conns[i].state == IDLE) open_conn(&conns[i]);
      else if (conns[i].state == WAIT_TICKET && t - conns[i].started > 1.0) {
        close_conn(&conns[i], 0);
        open_conn(&conns[i]);
      }
    }
  }
  double measured = now() - t0;
  printf("{\"handshakes\":%lld,\"resumed\":%lld,\"errors\":%lld,\"bytes\":%lld,\"connects\":%lld,\"seconds\":%.3f,%s}\n",
         handshakes, resumed, errors, bytes, connects, measured, first[0] ? first : "\"protocol\":null");
  return 0;
}
