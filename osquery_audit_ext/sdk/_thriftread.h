/* Reading a Thrift binary-protocol reply as it arrives off a socket, shared by the compiled
 * readers of replies (core/_sqlfast.c reply_rows: an extension's generate reply as typed row
 * tuples; sdk/_thriftfast.c text_reply: a query answer as dicts). Header-only: each module
 * that includes it gets its own static copy of these small functions; the source is here
 * once. scripts/build_accel.py rebuilds a module when this file is newer.
 *
 * Decoding follows thrift's fastbinary (thrift/lib/py/src/ext/protocol.tcc): unknown fields
 * of any type skipped (nesting bounded), strings UTF-8 with errors "replace".
 */
#ifndef OAE_THRIFTREAD_H
#define OAE_THRIFTREAD_H

#include <stdint.h>

/* Thrift's binary protocol wire types (thrift/lib/py/src/ext/types.h TType). */
enum {
    TT_STOP = 0, TT_BOOL = 2, TT_BYTE = 3, TT_DOUBLE = 4, TT_I16 = 6, TT_I32 = 8, TT_I64 = 10,
    TT_STRING = 11, TT_STRUCT = 12, TT_MAP = 13, TT_SET = 14, TT_LIST = 15, TT_UUID = 16,
};
#define READ_CHUNK (256 * 1024) /* bytes asked of read() at a time */
#define MAX_DEPTH 64            /* nesting of skipped fields, as fastbinary bounds it */

/* Sets ValueError("malformed reply: ...") and gives NULL (sql.py makes it the query's error). */
#define MALFORMED(...) PyErr_Format(PyExc_ValueError, "malformed reply: " __VA_ARGS__)

/* The reply as it arrives: read(n) gives 1..n more bytes (the transport's buffered ones
 * first, then the socket's) and raises at the end of the stream. buf[start:end] holds what
 * is not consumed yet; the connection stays open after the reply, so nothing is asked for
 * beyond what the reply needs. */
typedef struct {
    PyObject *read, *chunk_size;
    char *buf;
    Py_ssize_t cap, start, end;
} stream_t;

static inline int grow(stream_t *in, Py_ssize_t room)
{
    if (in->cap - in->end >= room)
        return 0;
    Py_ssize_t cap = in->cap * 2 > in->end + room ? in->cap * 2 : in->end + room;
    char *buf = PyMem_Realloc(in->buf, (size_t)cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    in->buf = buf;
    in->cap = cap;
    return 0;
}

/* One more chunk after what is left (moved to the front: a value straddling chunks ends
 * up whole). */
static inline int fill(stream_t *in)
{
    if (in->start > 0) {
        memmove(in->buf, in->buf + in->start, (size_t)(in->end - in->start));
        in->end -= in->start;
        in->start = 0;
    }
    if (grow(in, READ_CHUNK) < 0)
        return -1;
    PyObject *chunk = PyObject_CallOneArg(in->read, in->chunk_size);
    if (chunk == NULL)
        return -1;
    if (!PyBytes_Check(chunk)) {
        PyErr_Format(PyExc_TypeError, "read() gave %.50s, not bytes", Py_TYPE(chunk)->tp_name);
        Py_DECREF(chunk);
        return -1;
    }
    Py_ssize_t n = PyBytes_GET_SIZE(chunk);
    if (n == 0 || grow(in, n) < 0) {
        Py_DECREF(chunk);
        return n == 0 ? (MALFORMED("it ends early"), -1) : -1;
    }
    memcpy(in->buf + in->end, PyBytes_AS_STRING(chunk), (size_t)n);
    in->end += n;
    Py_DECREF(chunk);
    return 0;
}

/* The next n bytes, consumed; valid until the next take or skip_bytes. */
static inline const char *take(stream_t *in, Py_ssize_t n)
{
    while (in->end - in->start < n)
        if (fill(in) < 0)
            return NULL;
    const char *p = in->buf + in->start;
    in->start += n;
    return p;
}

static inline int skip_bytes(stream_t *in, Py_ssize_t n)
{
    while (n > 0) {
        if (in->end == in->start && fill(in) < 0)
            return -1;
        Py_ssize_t part = in->end - in->start < n ? in->end - in->start : n;
        in->start += part;
        n -= part;
    }
    return 0;
}

static inline int read_byte(stream_t *in, int *out)
{
    const unsigned char *p = (const unsigned char *)take(in, 1);
    if (p == NULL)
        return -1;
    *out = p[0];
    return 0;
}

static inline int read_i32(stream_t *in, int32_t *out)
{
    const unsigned char *p = (const unsigned char *)take(in, 4);
    if (p == NULL)
        return -1;
    *out = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    return 0;
}

static inline int read_i64(stream_t *in, int64_t *out)
{
    const unsigned char *p = (const unsigned char *)take(in, 8);
    if (p == NULL)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    *out = (int64_t)v;
    return 0;
}

/* A field header: *type, and *id unless the type is STOP. */
static inline int read_field(stream_t *in, int *type, int *id)
{
    if (read_byte(in, type) < 0)
        return -1;
    if (*type == TT_STOP)
        return 0;
    const unsigned char *p = (const unsigned char *)take(in, 2);
    if (p == NULL)
        return -1;
    *id = (int16_t)((uint16_t)p[0] << 8 | p[1]);
    return 0;
}

/* A length (string, list, map) that must not be negative. */
static inline int read_length(stream_t *in, Py_ssize_t *out, const char *what)
{
    int32_t n;
    if (read_i32(in, &n) < 0)
        return -1;
    if (n < 0)
        return MALFORMED("negative %s length %d", what, (int)n), -1;
    *out = n;
    return 0;
}

/* A value of a field or element nobody reads, as thrift skips it. */
static inline int skip(stream_t *in, int type, int depth)
{
    Py_ssize_t n;
    int a, b, id;
    if (depth > MAX_DEPTH)
        return MALFORMED("nested deeper than %d", MAX_DEPTH), -1;
    switch (type) {
    case TT_BOOL:
    case TT_BYTE:
        return skip_bytes(in, 1);
    case TT_I16:
        return skip_bytes(in, 2);
    case TT_I32:
        return skip_bytes(in, 4);
    case TT_I64:
    case TT_DOUBLE:
        return skip_bytes(in, 8);
    case TT_UUID:
        return skip_bytes(in, 16);
    case TT_STRING:
        return read_length(in, &n, "string") < 0 ? -1 : skip_bytes(in, n);
    case TT_STRUCT:
        for (;;) {
            if (read_field(in, &a, &id) < 0)
                return -1;
            if (a == TT_STOP)
                return 0;
            if (skip(in, a, depth + 1) < 0)
                return -1;
        }
    case TT_MAP:
        if (read_byte(in, &a) < 0 || read_byte(in, &b) < 0 || read_length(in, &n, "map") < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (skip(in, a, depth + 1) < 0 || skip(in, b, depth + 1) < 0)
                return -1;
        return 0;
    case TT_SET:
    case TT_LIST:
        if (read_byte(in, &a) < 0 || read_length(in, &n, "list") < 0)
            return -1;
        for (Py_ssize_t i = 0; i < n; i++)
            if (skip(in, a, depth + 1) < 0)
                return -1;
        return 0;
    default:
        return MALFORMED("unknown field type %d", type), -1;
    }
}

/* A string's bytes as fastbinary decodes them (PyUnicode_DecodeUTF8, errors "replace"). */
static inline PyObject *read_text(stream_t *in)
{
    Py_ssize_t n;
    const char *p;
    if (read_length(in, &n, "string") < 0 || (p = take(in, n)) == NULL)
        return NULL;
    return PyUnicode_DecodeUTF8(p, n, "replace");
}

/* ExtensionStatus as (code, message, uuid), each None when absent. */
static inline PyObject *read_status(stream_t *in, int depth)
{
    PyObject *fields[3] = {Py_None, Py_None, Py_None};
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    int type, id;
    for (;;) {
        PyObject *value = NULL;
        if (read_field(in, &type, &id) < 0)
            goto fail;
        if (type == TT_STOP)
            break;
        if (id == 1 && type == TT_I32) {
            int32_t code;
            if (read_i32(in, &code) < 0 || (value = PyLong_FromLong(code)) == NULL)
                goto fail;
        }
        else if (id == 2 && type == TT_STRING) {
            if ((value = read_text(in)) == NULL)
                goto fail;
        }
        else if (id == 3 && type == TT_I64) {
            int64_t uuid;
            if (read_i64(in, &uuid) < 0 || (value = PyLong_FromLongLong(uuid)) == NULL)
                goto fail;
        }
        else if (skip(in, type, depth + 1) < 0)
            goto fail;
        if (value != NULL)
            Py_SETREF(fields[id - 1], value);
    }
    return PyTuple_Pack(3, fields[0], fields[1], fields[2]);
fail:
    Py_DECREF(fields[0]);
    Py_DECREF(fields[1]);
    Py_DECREF(fields[2]);
    return NULL;
}


/* What reads an ExtensionResponse's rows (field 2, a list), given the reader's state. */
typedef PyObject *(*rows_reader_t)(stream_t *in, void *state);

/* ExtensionResponse as (status, rows): status read_status's, rows what read_rows gives of
 * field 2; each None when absent; a field given twice: the last one. */
static inline PyObject *read_response(stream_t *in, rows_reader_t read_rows, void *state,
                                      int depth)
{
    PyObject *status = Py_None, *rows = Py_None, *out = NULL;
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    int type, id;
    for (;;) {
        PyObject *value = NULL;
        if (read_field(in, &type, &id) < 0)
            goto done;
        if (type == TT_STOP)
            break;
        if (id == 1 && type == TT_STRUCT) {
            if ((value = read_status(in, depth + 1)) == NULL)
                goto done;
            Py_SETREF(status, value);
        }
        else if (id == 2 && type == TT_LIST) {
            if ((value = read_rows(in, state)) == NULL)
                goto done;
            Py_SETREF(rows, value);
        }
        else if (skip(in, type, depth + 1) < 0)
            goto done;
    }
    out = PyTuple_Pack(2, status, rows);
done:
    Py_DECREF(status);
    Py_DECREF(rows);
    return out;
}

/* A call's result struct (the reply after its message header, as the generated client's
 * recv reads it): read_response of field 0 (success), None when the reply has no result;
 * every other field skipped. */
static inline PyObject *read_result(stream_t *in, rows_reader_t read_rows, void *state)
{
    PyObject *out = Py_None; /* no success field: the caller's "unknown result" */
    Py_INCREF(Py_None);
    int type, id;
    for (;;) {
        if (read_field(in, &type, &id) < 0)
            goto fail;
        if (type == TT_STOP)
            return out;
        if (id == 0 && type == TT_STRUCT) {
            PyObject *response = read_response(in, read_rows, state, 1);
            if (response == NULL)
                goto fail;
            Py_SETREF(out, response);
        }
        else if (skip(in, type, 1) < 0)
            goto fail;
    }
fail:
    Py_DECREF(out);
    return NULL;
}

#endif
