/* LD_PRELOAD shim for the load harness (benches/load/run): forget any TLS
 * session before a client handshake starts, so that every connection wrk
 * opens is a full handshake. wrk keeps its SSL object across reconnects
 * (SSL_clear), which resumes the previous session; h2load does the same. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_in_before(const SSL *s);
int SSL_set_session(SSL *s, SSL_SESSION *session);
static void forget(SSL *s) { if (SSL_in_before(s)) SSL_set_session(s, NULL); }
int SSL_connect(SSL *s) {
  static int (*real)(SSL *);
  if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_connect");
  forget(s);
  return real(s);
}
int SSL_do_handshake(SSL *s) {
  static int (*real)(SSL *);
  if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_do_handshake");
  forget(s);
  return real(s);
}
