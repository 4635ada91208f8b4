/* Compiled reader of a query answer for sdk/client.py: the rows of an ExtensionResponse
 * straight off the socket into dicts, without thrift's decoder making a new str for every
 * key of every row.
 *
 * Optional: client.py uses this module when it imports (scripts/build_accel.py compiles it
 * in place at `make install`) and thrift's own decoder otherwise; its twin is that decoder,
 * which it is tested against (tests/sdk/test_text_reply.py).
 *
 * text_reply(read, view_of) -> (status, rows), or None
 *   The reply to a query (the query_result struct after the message header), read as it
 *   arrives: read(n) gives 1..n more bytes and raises at the end (_thriftread.h). status is
 *   (code, message, uuid), each None when absent; rows None when the reply has none, else
 *   one dict per map, as thrift's fastbinary makes it (strings UTF-8 with errors "replace",
 *   a key given twice: its first place, its last value). None when the reply has no
 *   result. Bytes that are no such reply raise ValueError("malformed reply: ...").
 *   view_of(keys) gives a dict holding `keys` (a tuple of str) in order: the rows whose keys
 *   are those, in that order (nearly every row of an answer), are copies of it with their
 *   values set, so they share its keys (a key-sharing dict's copy holds a values array).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_thriftread.h"

#define TEMPLATE_CHANGES 8 /* key orders a reply may switch to before rows are plain dicts */

typedef struct {
    PyObject *view_of;
    PyObject **keys;   /* the row being read: its key objects, by map position */
    PyObject **values; /* and its values */
    Py_ssize_t cap;    /* room in keys/values */
    PyObject **last;   /* the previous row's keys, by position (owned) */
    Py_ssize_t nlast;
    PyObject **order;  /* the keys the template was made with (owned) */
    Py_ssize_t norder;
    PyObject *template;
    int changes;
} rows_t;

static int room(rows_t *r, Py_ssize_t n)
{
    if (n <= r->cap)
        return 0;
    Py_ssize_t cap = n > 2 * r->cap ? n : 2 * r->cap;
    PyObject **keys = PyMem_Realloc(r->keys, (size_t)cap * sizeof(PyObject *));
    if (keys != NULL)
        r->keys = keys;
    PyObject **values = keys ? PyMem_Realloc(r->values, (size_t)cap * sizeof(PyObject *)) : NULL;
    if (values != NULL)
        r->values = values;
    PyObject **last = values ? PyMem_Realloc(r->last, (size_t)cap * sizeof(PyObject *)) : NULL;
    if (last == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    r->last = last;
    r->cap = cap;
    return 0;
}

static void clear_keys(PyObject **keys, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        Py_CLEAR(keys[i]);
}

/* The key at map position i: the previous row's object when the bytes are its UTF-8 (equal
 * bytes decode to an equal str), else a new str. */
static PyObject *read_key(stream_t *in, rows_t *r, Py_ssize_t i)
{
    Py_ssize_t n;
    const char *p;
    if (read_length(in, &n, "string") < 0 || (p = take(in, n)) == NULL)
        return NULL;
    if (i < r->nlast) {
        Py_ssize_t size;
        const char *known = PyUnicode_AsUTF8AndSize(r->last[i], &size);
        if (known == NULL)
            return NULL;
        if (size == n && memcmp(known, p, (size_t)n) == 0) {
            Py_INCREF(r->last[i]);
            return r->last[i];
        }
    }
    return PyUnicode_DecodeUTF8(p, n, "replace");
}

/* A new template when the key order changed (a bounded number of times per reply). */
static int retemplate(rows_t *r, Py_ssize_t n)
{
    if (r->changes >= TEMPLATE_CHANGES) {
        Py_CLEAR(r->template);
        return 0;
    }
    r->changes++;
    PyObject *keys = PyTuple_New(n);
    if (keys == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(r->keys[i]);
        PyTuple_SET_ITEM(keys, i, r->keys[i]);
    }
    PyObject *view = PyObject_CallOneArg(r->view_of, keys);
    Py_DECREF(keys);
    if (view == NULL)
        return -1;
    if (!PyDict_CheckExact(view)) {
        Py_DECREF(view);
        PyErr_SetString(PyExc_TypeError, "view_of gives a dict");
        return -1;
    }
    Py_XSETREF(r->template, view);
    clear_keys(r->order, r->norder);
    PyMem_Free(r->order);
    r->norder = 0;
    r->order = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(PyObject *));
    if (r->order == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(r->keys[i]);
        r->order[i] = r->keys[i];
    }
    r->norder = n;
    return 0;
}

static PyObject *read_row(stream_t *in, rows_t *r, Py_ssize_t index)
{
    int ktype, vtype;
    Py_ssize_t n, got = 0;
    PyObject *row = NULL;
    if (read_byte(in, &ktype) < 0 || read_byte(in, &vtype) < 0 ||
        read_length(in, &n, "map") < 0)
        return NULL;
    if (ktype != TT_STRING || vtype != TT_STRING)
        return MALFORMED("row %zd is a map of types %d -> %d, not of strings", index, ktype,
                         vtype);
    if (room(r, n) < 0)
        return NULL;
    for (; got < n; got++) {
        if ((r->keys[got] = read_key(in, r, got)) == NULL)
            goto done;
        if ((r->values[got] = read_text(in)) == NULL) {
            Py_CLEAR(r->keys[got]);
            goto done;
        }
    }
    int same = r->template != NULL && n == r->norder;
    for (Py_ssize_t i = 0; same && i < n; i++)
        same = r->keys[i] == r->order[i];
    if (!same && retemplate(r, n) < 0)
        goto done;
    row = r->template != NULL ? PyDict_Copy(r->template) : PyDict_New();
    for (Py_ssize_t i = 0; row != NULL && i < n; i++)
        if (PyDict_SetItem(row, r->keys[i], r->values[i]) < 0)
            Py_CLEAR(row);
done:
    clear_keys(r->last, r->nlast);
    for (Py_ssize_t i = 0; i < got; i++) /* the next row's guesses: this row's keys */
        r->last[i] = r->keys[i];
    r->nlast = got;
    clear_keys(r->values, got);
    return row;
}

static PyObject *read_rows(stream_t *in, rows_t *r)
{
    int type;
    Py_ssize_t count;
    if (read_byte(in, &type) < 0 || read_length(in, &count, "list") < 0)
        return NULL;
    if (type != TT_MAP)
        return MALFORMED("the rows are of type %d, not maps", type);
    PyObject *rows = PyList_New(0);
    for (Py_ssize_t i = 0; rows != NULL && i < count; i++) {
        PyObject *row = read_row(in, r, i);
        if (row == NULL || PyList_Append(rows, row) < 0)
            Py_CLEAR(rows);
        Py_XDECREF(row);
    }
    return rows;
}

static PyObject *read_dict_rows(stream_t *in, void *rows) { return read_rows(in, rows); }

static PyObject *text_reply(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyCallable_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "text_reply(read: callable, view_of: callable)");
        return NULL;
    }
    stream_t in = {args[0], PyLong_FromLong(READ_CHUNK), NULL, 0, 0, 0};
    rows_t r = {args[1], NULL, NULL, 0, NULL, 0, NULL, 0, NULL, 0};
    PyObject *out = in.chunk_size == NULL ? NULL : read_result(&in, read_dict_rows, &r);
    Py_XDECREF(in.chunk_size);
    PyMem_Free(in.buf);
    clear_keys(r.last, r.nlast);
    clear_keys(r.order, r.norder);
    Py_XDECREF(r.template);
    PyMem_Free(r.keys);
    PyMem_Free(r.values);
    PyMem_Free(r.last);
    PyMem_Free(r.order);
    return out;
}

static PyMethodDef methods[] = {
    {"text_reply", (PyCFunction)(void (*)(void))text_reply, METH_FASTCALL,
     "A query answer read off the socket into (status, rows of dicts)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_thriftfast", "Compiled reader of query answers for sdk/client.py.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__thriftfast(void) { return PyModule_Create(&module_def); }
