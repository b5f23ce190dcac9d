// link_sec.c - the cluster certificate and the ZAP handler.
//
// The certificate is a CurveZMQ key pair in the text format CZMQ's zcert
// uses, written with mode 0600.  Every process of a cluster uses the same
// pair as server and as client, and the ZAP handler (ZeroMQ RFC 27), bound
// in the link's own ZeroMQ context before the ROUTER binds, admits a CURVE
// client only if it presents the cluster's public key.  It runs inside the
// link's I/O thread, so it cannot die on its own: if that thread is gone,
// so is every socket it guards.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "link_impl.h"
#include "ra_log.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"

int
ra_link_cert_create(const char *path)
{
    char pub[41], sec[41];
    if (path == NULL) {
        return RA_EINVAL;
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        int e = zmq_errno();
        if (e == ENOTSUP) {
            ra_log_err("link", "this libzmq has no CURVE support");
            return RA_ENOTSUP;
        }
        return -e;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        explicit_bzero(sec, sizeof(sec));
        if (e == EEXIST) {
            return RA_EEXIST;
        }
        ra_log_err("link", "cannot create certificate %s: %s", path,
                   strerror(e));
        return -e;
    }
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "#   rayo cluster certificate (CurveZMQ key pair).\n"
                     "#   Keep it secret: mode 0600, copied only to the\n"
                     "#   machines of this cluster.\n"
                     "metadata\n"
                     "curve\n"
                     "    public-key = \"%s\"\n"
                     "    secret-key = \"%s\"\n",
                     pub, sec);
    explicit_bzero(sec, sizeof(sec));
    int rc = 0;
    if (write(fd, buf, (size_t)n) != n || fsync(fd) != 0) {
        rc = errno != 0 ? -errno : -EIO;
        unlink(path);
    }
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return rc;
}

// Finds `name = "VALUE"` in text and copies a 40-character Z85 value.
static bool
find_key(const char *text, const char *name, char out[41])
{
    const char *p = strstr(text, name);
    if (p == NULL) {
        return false;
    }
    p += strlen(name);
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p++ != '=') {
        return false;
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p++ != '"') {
        return false;
    }
    if (strlen(p) < 41 || p[40] != '"') {
        return false;
    }
    memcpy(out, p, 40);
    out[40] = 0;
    uint8_t raw[32];
    return zmq_z85_decode(raw, out) != NULL;
}

int
ra__link_cert_load(const char *path, char pub[41], char sec[41])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        ra_log_err("link", "cannot read the cluster certificate %s: %s",
                   path, strerror(e));
        return e == ENOENT ? RA_ENOENT : -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return RA_EBADMSG;
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        ra_log_err("link", "certificate %s is readable by others: "
                   "chmod 600 it", path);
        return RA_EACCES;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return RA_EBADMSG;
    }
    buf[n] = 0;
    bool ok = find_key(buf, "public-key", pub) &&
              find_key(buf, "secret-key", sec);
    explicit_bzero(buf, sizeof(buf));
    if (!ok) {
        ra_log_err("link", "%s is not a rayo cluster certificate", path);
        return RA_EBADMSG;
    }
    return 0;
}

int
ra_link_cert_ensure(const char *path)
{
    int rc = ra_link_cert_create(path);
    if (rc != RA_EEXIST) {
        return rc;
    }
    char pub[41], sec[41];
    rc = ra__link_cert_load(path, pub, sec);
    explicit_bzero(sec, sizeof(sec));
    return rc;
}

int
ra__link_zap_start(ra_link_t *l)
{
    l->zap = zmq_socket(l->zctx, ZMQ_REP);
    if (l->zap == NULL) {
        return -zmq_errno();
    }
    int zero = 0;
    zmq_setsockopt(l->zap, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_bind(l->zap, ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        ra_log_err("link", "cannot start the ZAP handler: %s",
                   zmq_strerror(e));
        return -e;
    }
    return 0;
}

static void
zap_send(void *s, const char *part, size_t len, bool more)
{
    zmq_send(s, part, len, more ? ZMQ_SNDMORE : 0);
}

// Answers every pending ZAP request: CURVE clients must present the
// cluster's public key; NULL (ipc, guarded by its directory) passes.
void
ra__link_zap_handle(ra_link_t *l)
{
    for (;;) {
        // version, request id, domain, address, identity, mechanism,
        // credentials...
        zmq_msg_t part[8];
        int nparts = 0;
        bool more = true;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, l->zap, nparts == 0 ? ZMQ_DONTWAIT : 0) <
                0) {
                zmq_msg_close(&m);
                if (nparts == 0) {
                    return;
                }
                break;
            }
            more = zmq_msg_more(&m);
            if (nparts < 8) {
                part[nparts++] = m;
            } else {
                zmq_msg_close(&m);
            }
        }
        const char *status = "400", *text = "refused";
        if (nparts >= 6 && zmq_msg_size(&part[0]) == 3 &&
            memcmp(zmq_msg_data(&part[0]), "1.0", 3) == 0) {
            const char *mech = zmq_msg_data(&part[5]);
            size_t mlen = zmq_msg_size(&part[5]);
            if (mlen == 5 && memcmp(mech, "CURVE", 5) == 0 && nparts >= 7 &&
                zmq_msg_size(&part[6]) == 32) {
                char z85[41];
                zmq_z85_encode(z85, zmq_msg_data(&part[6]), 32);
                if (l->pub[0] != 0 && memcmp(z85, l->pub, 40) == 0) {
                    status = "200";
                    text = "OK";
                }
            } else if (mlen == 4 && memcmp(mech, "NULL", 4) == 0) {
                status = "200";
                text = "OK";
            }
        }
        if (status[0] != '2') {
            l->st.auth_denied++;
            char addr[64] = "?";
            if (nparts >= 4) {
                size_t al = zmq_msg_size(&part[3]);
                al = al < sizeof(addr) - 1 ? al : sizeof(addr) - 1;
                memcpy(addr, zmq_msg_data(&part[3]), al);
                addr[al] = 0;
            }
            ra_log_warn("link", "refused a connection from %s: it does not "
                        "hold the cluster certificate", addr);
        }
        if (nparts >= 2) {
            zap_send(l->zap, "1.0", 3, true);
            zap_send(l->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]),
                     true);
            zap_send(l->zap, status, 3, true);
            zap_send(l->zap, text, strlen(text), true);
            zap_send(l->zap, "", 0, true);
            zap_send(l->zap, "", 0, false);
        } else {
            // A malformed request still needs a reply for REP to go on.
            zap_send(l->zap, "1.0", 3, true);
            zap_send(l->zap, "", 0, true);
            zap_send(l->zap, "500", 3, true);
            zap_send(l->zap, "bad request", 11, true);
            zap_send(l->zap, "", 0, true);
            zap_send(l->zap, "", 0, false);
        }
        for (int i = 0; i < nparts; i++) {
            zmq_msg_close(&part[i]);
        }
    }
}
