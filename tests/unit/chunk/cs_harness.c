/* The chunk test harness: a fake master on cm_http_server, in-process chunkservers, curl-based
 * HTTP helpers and file helpers. */
#include "cs_harness.h"

#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chunk/cs_proto.h"
#include "chunk/store.h"
#include "common/crc32c.h"
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"

/* ---- fake master ---- */

static void append_ids(cJSON *dst, const cJSON *src)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, src)
    {
        if (cJSON_IsString(it))
            cJSON_AddItemToArray(dst, cJSON_CreateString(it->valuestring));
        else if (cJSON_IsObject(it))
            cJSON_AddItemToArray(dst, cJSON_Duplicate(it, 1));
    }
}

static int fm_register(struct cm_http_req *req, void *data)
{
    struct fake_master *m = data;
    cJSON *o = cJSON_CreateObject();

    pthread_mutex_lock(&m->mu);
    m->registers++;
    cJSON_Delete(m->last_register);
    m->last_register = cJSON_Duplicate(cm_http_req_json(req), 1);
    cm_json_add_u64(o, CS_F_CS_ID, ++m->next_cs_id);
    pthread_mutex_unlock(&m->mu);
    return cm_http_answer_json(req, 200, o);
}

static int fm_heartbeat(struct cm_http_req *req, void *data)
{
    struct fake_master *m = data;
    const cJSON *b = cm_http_req_json(req);
    cJSON *o;

    pthread_mutex_lock(&m->mu);
    if (m->heartbeat_error_n > 0) {
        int err = m->heartbeat_error;
        m->heartbeat_error_n--;
        pthread_mutex_unlock(&m->mu);
        return err;
    }
    m->heartbeats++;
    cJSON_Delete(m->last_heartbeat);
    m->last_heartbeat = cJSON_Duplicate(b, 1);
    append_ids(m->corrupt, cJSON_GetObjectItemCaseSensitive(b, CS_F_CORRUPT));
    append_ids(m->removed, cJSON_GetObjectItemCaseSensitive(b, CS_F_REMOVED));
    append_ids(m->added, cJSON_GetObjectItemCaseSensitive(b, CS_F_ADDED));
    o = cJSON_CreateObject();
    cJSON *mine = cJSON_AddArrayToObject(o, CS_F_COMMANDS), *it = m->commands->child, *next;
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(b, CS_F_ADDR);
    for (; it != NULL; it = next) {
        const cJSON *to = cJSON_GetObjectItemCaseSensitive(it, "to");
        next = it->next;
        if (cJSON_IsString(from) && strcmp(to->valuestring, from->valuestring) == 0) {
            cJSON_DetachItemViaPointer(m->commands, it);
            cJSON_AddItemToArray(mine, cJSON_DetachItemFromObject(it, "cmd"));
            cJSON_Delete(it);
        }
    }
    cJSON_AddBoolToObject(o, CS_F_NEED_REPORT, m->ask_report);
    m->ask_report = false;
    pthread_mutex_unlock(&m->mu);
    return cm_http_answer_json(req, 200, o);
}

static int fm_report(struct cm_http_req *req, void *data)
{
    struct fake_master *m = data;
    const cJSON *b = cm_http_req_json(req);
    bool last = false;
    uint64_t part = 0;

    cm_json_get_bool(b, CS_F_LAST, &last);
    cm_json_get_u64(b, CS_F_PART, &part);
    pthread_mutex_lock(&m->mu);
    m->report_parts++;
    if (part == 0) {
        cJSON_Delete(m->partial);
        m->partial = cJSON_CreateArray();
    }
    append_ids(m->partial, cJSON_GetObjectItemCaseSensitive(b, CS_F_BLOCKS));
    append_ids(m->corrupt, cJSON_GetObjectItemCaseSensitive(b, CS_F_CORRUPT));
    if (last) {
        cJSON_Delete(m->report);
        m->report = m->partial;
        m->partial = cJSON_CreateArray();
        if (m->reports < FM_REPORT_TIMES) {
            m->report_ms[m->reports] = th_now_ms();
            m->heartbeats_at_report[m->reports] = m->heartbeats;
        }
        m->reports++;
    }
    pthread_mutex_unlock(&m->mu);
    return cm_http_answer_json(req, 200, NULL);
}

void fm_start(struct fake_master *m)
{
    struct cm_http_server_config cfg = {.bind_addr = "127.0.0.1", .threads = 2};
    const struct cm_http_route routes[] = {
        {"POST", MASTER_PATH_CS_REGISTER, CM_HTTP_JSON, NULL, NULL, fm_register, m},
        {"POST", MASTER_PATH_CS_HEARTBEAT, CM_HTTP_JSON, NULL, NULL, fm_heartbeat, m},
        {"POST", MASTER_PATH_CS_REPORT, CM_HTTP_JSON, NULL, NULL, fm_report, m},
    };

    memset(m, 0, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->commands = cJSON_CreateArray();
    m->report = cJSON_CreateArray();
    m->partial = cJSON_CreateArray();
    m->corrupt = cJSON_CreateArray();
    m->added = cJSON_CreateArray();
    m->removed = cJSON_CreateArray();
    cr_assert_eq(cm_http_server_new(&cfg, &m->srv), 0);
    cr_assert_eq(cm_http_server_add_routes(m->srv, routes, 3), 0);
    cr_assert_eq(cm_http_server_start(m->srv), 0);
    m->port = cm_http_server_port(m->srv);
    snprintf(m->addr, sizeof(m->addr), "127.0.0.1:%u", m->port);
}

void fm_stop(struct fake_master *m)
{
    cm_http_server_free(m->srv);
    cJSON_Delete(m->commands);
    cJSON_Delete(m->last_register);
    cJSON_Delete(m->last_heartbeat);
    cJSON_Delete(m->report);
    cJSON_Delete(m->partial);
    cJSON_Delete(m->corrupt);
    cJSON_Delete(m->added);
    cJSON_Delete(m->removed);
    pthread_mutex_destroy(&m->mu);
}

void fm_command(struct fake_master *m, const char *to, cJSON *cmd)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "to", to);
    cJSON_AddItemToObject(o, "cmd", cmd);
    pthread_mutex_lock(&m->mu);
    cJSON_AddItemToArray(m->commands, o);
    pthread_mutex_unlock(&m->mu);
}

bool fm_has(struct fake_master *m, cJSON *const *list, uint64_t id)
{
    char hex[CS_BLOCK_ID_HEX + 1];
    const cJSON *it;
    bool found = false;

    cs_block_id_format(id, hex);
    pthread_mutex_lock(&m->mu);
    cJSON_ArrayForEach(it, *list)
    {
        const cJSON *s = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, CS_F_ID) : it;
        if (cJSON_IsString(s) && strcmp(s->valuestring, hex) == 0)
            found = true;
    }
    pthread_mutex_unlock(&m->mu);
    return found;
}

unsigned fm_count(struct fake_master *m, const unsigned *counter)
{
    unsigned v;

    pthread_mutex_lock(&m->mu);
    v = *counter;
    pthread_mutex_unlock(&m->mu);
    return v;
}

cJSON *fm_last_heartbeat(struct fake_master *m)
{
    cJSON *c;

    pthread_mutex_lock(&m->mu);
    c = m->last_heartbeat ? cJSON_Duplicate(m->last_heartbeat, 1) : NULL;
    pthread_mutex_unlock(&m->mu);
    return c;
}

/* ---- chunkservers ---- */

char *th_tmpdir(void)
{
    char *p = strdup("/tmp/dfs-test-chunk-XXXXXX");

    cr_assert_not_null(mkdtemp(p));
    return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void th_rmrf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void th_cs_start(struct th_cs *c, const char *dir, const struct th_opts *o)
{
    struct th_opts none = {0};
    struct cs_config cfg;
    int rc;

    if (o == NULL)
        o = &none;
    cm_log_init("test", CM_LOG_WARN);
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", dir);
    mkdir(dir, 0755);
    cs_config_default(&cfg);
    snprintf(cfg.bind_host, sizeof(cfg.bind_host), "127.0.0.1");
    cfg.port = o->port;
    cfg.storage_dir = c->dir;
    cfg.masters = o->masters;
    cfg.block_size = o->block_size ? o->block_size : 1024 * 1024;
    cfg.scrub_rate = o->scrub_rate;
    cfg.scrub_pause_ms = o->scrub_pause_ms;
    cfg.heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 100;
    if (o->report_interval_s > 0)
        cfg.report_interval_s = o->report_interval_s;
    cfg.threads = 4;
    cfg.pipeline_timeout_ms = 10000;
    cfg.master_timeout_ms = 2000;
    snprintf(cfg.rack, sizeof(cfg.rack), "r1");
    if (o->secret != NULL)
        cr_assert_eq(cm_secret_set(&cfg.secret, o->secret, strlen(o->secret)), 0);
    rc = cs_start(&cfg, &c->cs);
    cr_assert_eq(rc, 0, "cs_start: %s", cm_errname(rc));
    c->port = cs_port(c->cs);
    snprintf(c->addr, sizeof(c->addr), "%s", cs_advertise(c->cs));
}

void th_cs_stop(struct th_cs *c)
{
    cs_stop(c->cs);
    c->cs = NULL;
}

/* ---- HTTP ---- */

static struct cm_http_client *client;
static pthread_once_t client_once = PTHREAD_ONCE_INIT;

static void client_init(void)
{
    struct cm_http_client_config cfg = {.timeout_ms = 20000};

    cm_http_client_new(&cfg, &client);
}

struct cm_http_client *th_http(void)
{
    pthread_once(&client_once, client_init);
    return client;
}

struct mem_upload {
    const char *p;
    size_t left;
};

static int mem_upload(void *ctx, char *buf, size_t cap, size_t *n_out)
{
    struct mem_upload *u = ctx;
    size_t n = u->left < cap ? u->left : cap;

    memcpy(buf, u->p, n);
    u->p += n;
    u->left -= n;
    *n_out = n;
    return 0;
}

int th_put(const char *addr, uint64_t id, const void *data, size_t len, const char *pipeline,
           const char *crc, bool chunked, cJSON **answer)
{
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    struct mem_upload u = {data, len};
    char url[1024], hex[CS_BLOCK_ID_HEX + 1];
    int rc;

    cs_block_id_format(id, hex);
    snprintf(url, sizeof(url), "http://%s/blocks/%s?x=1%s%s%s%s", addr, hex,
             pipeline ? "&" CS_QUERY_PIPELINE "=" : "", pipeline ? pipeline : "",
             crc ? "&" CS_QUERY_CRC "=" : "", crc ? crc : "");
    call.method = "PUT";
    call.url = url;
    if (chunked) {
        call.upload = mem_upload;
        call.upload_ctx = &u;
        call.upload_len = -1;
    } else {
        call.body = len ? data : "";
        call.body_len = len;
    }
    rc = cm_http_call(th_http(), &call, &resp);
    if (answer != NULL) {
        *answer = resp.json;
        resp.json = NULL;
    }
    cm_http_response_clear(&resp);
    return rc;
}

int th_get(const char *addr, uint64_t id, const char *range, char **data, size_t *len)
{
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    char url[256], hex[CS_BLOCK_ID_HEX + 1];
    int rc;

    cs_block_id_format(id, hex);
    snprintf(url, sizeof(url), "http://%s/blocks/%s", addr, hex);
    call.url = url;
    call.range = range;
    call.flags = CM_HTTP_CALL_RAW;
    rc = cm_http_call(th_http(), &call, &resp);
    *data = NULL;
    *len = 0;
    if (rc == 0) {
        *data = resp.body ? resp.body : calloc(1, 1);
        *len = resp.body_len;
        resp.body = NULL;
    }
    cm_http_response_clear(&resp);
    return rc;
}

int th_status_of(const char *method, const char *addr, const char *path)
{
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    char url[512];
    int status;

    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    call.method = method;
    call.url = url;
    if (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0) {
        call.body = "{}";
        call.body_len = 2;
    }
    call.flags = CM_HTTP_CALL_RAW;
    cm_http_call(th_http(), &call, &resp);
    status = resp.status;
    cm_http_response_clear(&resp);
    return status;
}

cJSON *th_json_get(const char *addr, const char *path)
{
    struct cm_http_response resp = {0};
    char url[512];
    cJSON *j = NULL;

    snprintf(url, sizeof(url), "http://%s%s", addr, path);
    if (cm_http_get_json(th_http(), url, &resp) == 0) {
        j = resp.json;
        resp.json = NULL;
    }
    cm_http_response_clear(&resp);
    return j;
}

char *th_metrics(const char *addr)
{
    struct cm_http_response resp = {0};
    struct cm_http_call call = {0};
    char url[256], *text;
    int rc;

    snprintf(url, sizeof(url), "http://%s%s", addr, CS_PATH_METRICS);
    call.url = url;
    call.flags = CM_HTTP_CALL_RAW;
    rc = cm_http_call(th_http(), &call, &resp);
    cr_assert_eq(rc, 0, "GET %s: %s", url, cm_errname(rc));
    cr_assert_not_null(resp.body, "GET %s: empty answer", url);
    text = resp.body;
    resp.body = NULL;
    cm_http_response_clear(&resp);
    return text;
}

uint64_t th_metric_of(const char *text, const char *name)
{
    size_t len = strlen(name);

    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            char *stop;
            unsigned long long v = strtoull(line + len + 1, &stop, 10);
            cr_assert(stop > line + len + 1 && (*stop == '\n' || *stop == '\0'),
                      "metric %s: value is not an unsigned integer", name);
            return v;
        }
        if (end == NULL)
            break;
        line = end + 1;
    }
    cr_assert_fail("no metric %s in:\n%s", name, text);
    return 0;
}

uint64_t th_metric(const char *addr, const char *name)
{
    char *text = th_metrics(addr);
    uint64_t v = th_metric_of(text, name);

    free(text);
    return v;
}

/* ---- misc ---- */

void th_random(void *buf, size_t len, uint32_t seed)
{
    unsigned char *p = buf;
    uint64_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

/* nftw has no context argument: the search's state, for one search at a time. */
static struct {
    const char *name;
    char *out;
    size_t cap;
    int found;
} block_search;

static int find_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    if (flag == FTW_F && strcmp(path + ftw->base, block_search.name) == 0 &&
        block_search.found++ == 0)
        snprintf(block_search.out, block_search.cap, "%s", path);
    return 0;
}

void th_block_path(const char *dir, uint64_t id, char *out, size_t cap)
{
    char hex[CS_BLOCK_ID_HEX + 1], name[CS_BLOCK_ID_HEX + 8], top[512];

    cs_block_id_format(id, hex);
    snprintf(name, sizeof(name), "%s.blk", hex);
    snprintf(top, sizeof(top), "%s/blocks", dir);
    block_search.name = name;
    block_search.out = out;
    block_search.cap = cap;
    block_search.found = 0;
    nftw(top, find_one, 16, FTW_PHYS);
    cr_assert_eq(block_search.found, 1, "%d files named %s under %s", block_search.found, name,
                 top);
}

bool th_exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

static int temps;

static int count_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_F && strstr(path + ftw->base, ".tmp.") != NULL)
        temps++;
    return 0;
}

int th_count_temps(const char *dir)
{
    temps = 0;
    nftw(dir, count_one, 16, FTW_PHYS);
    return temps;
}

int th_hold_port(uint16_t port)
{
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "hold port %u", port);
    return fd;
}

void th_flip(const char *path, long off)
{
    int fd = open(path, O_RDWR);
    unsigned char b;

    cr_assert_geq(fd, 0, "open %s", path);
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x01;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

uint64_t th_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void th_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

bool th_wait(bool (*pred)(void *), void *arg)
{
    uint64_t end = th_now_ms() + TH_WAIT_MS;

    while (!pred(arg)) {
        if (th_now_ms() > end)
            return false;
        th_sleep_ms(10);
    }
    return true;
}

const char *th_replicas(const cJSON *answer)
{
    static char buf[1024];
    const cJSON *it;
    size_t len = 0;

    buf[0] = '\0';
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(answer, CS_F_REPLICAS))
    {
        if (cJSON_IsString(it))
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", len ? "," : "",
                                    it->valuestring);
    }
    return buf;
}

void th_store_put(struct cs_store *s, uint64_t id, const char *data, size_t len)
{
    struct cs_writer *w = NULL;
    struct cs_block_info info;

    cr_assert_eq(cs_writer_open(s, id, (int64_t)len, &w), 0);
    for (size_t off = 0; off < len;) {
        size_t n = len - off < 7777 ? len - off : 7777;
        cr_assert_eq(cs_writer_append(w, data + off, n), 0);
        off += n;
    }
    cr_assert_eq(cs_writer_commit(w, NULL, &info), 0);
    cr_assert_eq(info.len, len);
    cr_assert_eq(info.crc, cm_crc32c(0, data, len));
    cs_writer_free(w);
}

void th_store_expect(struct cs_store *s, uint64_t id, const char *data, size_t len)
{
    struct cs_reader *r = NULL;
    char *got = malloc(len + 1);

    cr_assert_eq(cs_reader_open(s, id, &r), 0, "block %016" PRIx64, id);
    cr_assert_eq(cs_reader_verify(r, 0, len), 0);
    cr_assert_eq(cs_reader_read(r, 0, got, len), 0);
    cr_assert(len == 0 || memcmp(got, data, len) == 0);
    cs_reader_free(r);
    free(got);
}
