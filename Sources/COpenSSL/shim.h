#ifndef COPENSSL_SHIM_H
#define COPENSSL_SHIM_H

#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

/* Macros over SSL_ctrl / BIO_ctrl, which Swift does not import. */

static inline int copenssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static inline long copenssl_ctx_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

static inline int copenssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

static inline size_t copenssl_bio_pending(BIO *bio) {
    return (size_t)BIO_ctrl_pending(bio);
}

static inline long copenssl_bio_set_mem_eof_return(BIO *bio, int v) {
    return BIO_set_mem_eof_return(bio, v);
}

static const long COPENSSL_MODE_RELEASE_BUFFERS = SSL_MODE_RELEASE_BUFFERS;
static const long COPENSSL_OP_NO_RENEGOTIATION = SSL_OP_NO_RENEGOTIATION;
static const long COPENSSL_OP_NO_COMPRESSION = SSL_OP_NO_COMPRESSION;

#endif /* COPENSSL_SHIM_H */
