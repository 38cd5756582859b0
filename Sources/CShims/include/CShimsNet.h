#ifndef PROV_CSHIMS_NET_H
#define PROV_CSHIMS_NET_H

// Shims for ProvNet: epoll and eventfd (not in Swift's Glibc module; struct epoll_event is packed), OpenSSL macros,
// and a socket BIO that sends with MSG_NOSIGNAL.

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define PROV_EPOLL_IN 0x001u
#define PROV_EPOLL_OUT 0x004u
#define PROV_EPOLL_ERR 0x008u
#define PROV_EPOLL_HUP 0x010u
#define PROV_EPOLL_RDHUP 0x2000u

/// epoll_create1(EPOLL_CLOEXEC).
int prov_epoll_create(void);
/// epoll_ctl with the event's data as a 64-bit value. `op` is 1 add, 2 delete, 3 modify.
int prov_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// epoll_wait that unpacks up to `max` events into `datas` and `events`. Returns the count, or -1 with errno.
int prov_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms);

/// A non-blocking, close-on-exec eventfd, or -1.
int prov_eventfd(void);
/// Adds 1 to the eventfd (wakes a poller).
void prov_eventfd_signal(int fd);
/// Reads the eventfd's counter to zero.
void prov_eventfd_drain(int fd);

/// accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC) (accept4 needs _GNU_SOURCE, which Swift's Glibc lacks).
int prov_accept(int fd, void *addr, unsigned int *len);

/// SIGPIPE ignored for the whole process (a peer that closes mid-write must not kill the daemon).
void prov_ignore_sigpipe(void);

/// malloc_trim(0): gives freed heap memory back to the system (after a burst of large request bodies).
void prov_malloc_trim(void);

/// CLOCK_MONOTONIC in nanoseconds.
uint64_t prov_monotonic_ns(void);

/// TLS 1.3 only, no session tickets, no session cache, Ed25519 signatures only, partial writes and moving write
/// buffers allowed (Swift arrays may move between retries), buffers released while idle. Returns 1 on success.
int prov_ssl_ctx_configure_tls13(SSL_CTX *ctx);

/// The SSL ex_data index ProvNet uses to reach its per-connection state from the verify callback.
int prov_ssl_ex_index(void);

/// A BIO over a socket: recv to read, send(..., MSG_NOSIGNAL) to write, retry flags on EAGAIN. Does not own fd.
BIO *prov_bio_socket_nosignal(int fd);

/// Sets subject and issuer of a certificate to CN=`cn`. Returns 1 on success.
int prov_x509_set_names(X509 *x, const char *cn);

/// ERR_GET_REASON and ERR_GET_LIB of a packed error code.
int prov_err_reason(unsigned long e);
int prov_err_lib(unsigned long e);

#endif
