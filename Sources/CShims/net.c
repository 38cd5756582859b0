#define _GNU_SOURCE 1
#include "CShimsNet.h"

#include <errno.h>
#include <malloc.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <pthread.h>
#include <string.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int prov_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int prov_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int prov_epoll_wait(int epfd, uint64_t *datas, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        datas[i] = evs[i].data.u64;
        events[i] = evs[i].events;
    }
    return n;
}

int prov_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

void prov_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t ignored = write(fd, &one, sizeof one);
    (void)ignored;
}

void prov_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t ignored = read(fd, &value, sizeof value);
    (void)ignored;
}

int prov_accept(int fd, void *addr, unsigned int *len) {
    return accept4(fd, (struct sockaddr *)addr, (socklen_t *)len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

void prov_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

void prov_malloc_trim(void) { malloc_trim(0); }

uint64_t prov_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int prov_ssl_ctx_configure_tls13(SSL_CTX *ctx) {
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1) return 0;
    if (SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) return 0;
    if (SSL_CTX_set_num_tickets(ctx, 0) != 1) return 0;
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION);
    // Idle connections give their record buffers back: a thousand idle peers cost sockets, not 34 KiB each.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set1_sigalgs_list(ctx, "ed25519") != 1) return 0;
    return 1;
}

static int prov_ex_index_value = -1;
static pthread_once_t prov_ex_index_once = PTHREAD_ONCE_INIT;

static void prov_ex_index_init(void) {
    prov_ex_index_value = CRYPTO_get_ex_new_index(CRYPTO_EX_INDEX_SSL, 0, NULL, NULL, NULL, NULL);
}

int prov_ssl_ex_index(void) {
    pthread_once(&prov_ex_index_once, prov_ex_index_init);
    return prov_ex_index_value;
}

static int prov_bio_write(BIO *b, const char *data, int len) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = send(fd, data, (size_t)len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
        return -1;
    }
    return (int)n;
}

static int prov_bio_read(BIO *b, char *out, int len) {
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n = recv(fd, out, (size_t)len, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
        return -1;
    }
    return (int)n;
}

static int prov_bio_puts(BIO *b, const char *str) { return prov_bio_write(b, str, (int)strlen(str)); }

static long prov_bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static int prov_bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *prov_bio_method = NULL;
static pthread_once_t prov_bio_once = PTHREAD_ONCE_INIT;

static void prov_bio_method_init(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "prov socket (MSG_NOSIGNAL)");
    if (m == NULL) return;
    BIO_meth_set_write(m, prov_bio_write);
    BIO_meth_set_read(m, prov_bio_read);
    BIO_meth_set_puts(m, prov_bio_puts);
    BIO_meth_set_ctrl(m, prov_bio_ctrl);
    BIO_meth_set_create(m, prov_bio_create);
    prov_bio_method = m;
}

BIO *prov_bio_socket_nosignal(int fd) {
    pthread_once(&prov_bio_once, prov_bio_method_init);
    if (prov_bio_method == NULL) return NULL;
    BIO *b = BIO_new(prov_bio_method);
    if (b == NULL) return NULL;
    BIO_set_data(b, (void *)(intptr_t)fd);
    return b;
}

int prov_x509_set_names(X509 *x, const char *cn) {
    X509_NAME *name = X509_NAME_new();
    if (name == NULL) return 0;
    int ok = X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) == 1 &&
             X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1;
    X509_NAME_free(name);
    return ok;
}

int prov_err_reason(unsigned long e) { return ERR_GET_REASON(e); }
int prov_err_lib(unsigned long e) { return ERR_GET_LIB(e); }
