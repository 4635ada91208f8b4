/* Compiled fast paths of events/rows.py's process_rows and socket_rows.
 *
 * Optional: rows.py uses this module when it imports (scripts/build_accel.py compiles it in
 * place at `make install`) and its own Python loops otherwise; the same tests run on both
 * (tests/events/test_batch_rows.py). It does only the plain case the Python loops take
 * without a call per row (the SYSCALL head read in place, a cached row view copied, the
 * per-event columns set) and calls back into rows.py for everything else: the row views
 * (templates), arguments that are not plain, other address families, and every event the
 * fast paths do not take. So rows.py stays the one definition of every column; this file
 * only reads the kernel's record text the way rows.py's regexes do:
 *   _SYSCALL_HEAD, _SADDR (with its one-saddr and even-length checks), _fast_argv (with
 *   _body and _value_bytes), argv_columns' no-escape case, decode_inet_saddr_hex.
 *
 * Entry points (rows.py's _compiled_rows calls them once per Run):
 *   process_run(run, query, rows) and socket_run(run, query, rows) append each selected
 *   item's row (or None) to the list `rows`. `query` is the tuple
 *   (wanted, boot_time, integer, null, view_of, slow, shape_of, cache, extra):
 *     wanted    frozenset of the columns the query uses
 *     boot_time float
 *     integer   None for typed rows, else the text form of an int (str: done here in C)
 *     null      the text form of None (typed: None)
 *     view_of   process: (arch, nr, success, exit, task_part, cwd_rest|None, path_rests)
 *               -> the template's view (a dict of the wanted columns) or None;
 *               socket: (arch, nr, success, exit, task_part) -> (view, is_bind) or None
 *     slow      (run, index) -> the row built the careful way (or None)
 *     shape_of  process: types -> (execve_at, cwd_at, paths_at) or None (_exec_shape);
 *               socket: types -> the SOCKADDR record's index, or -1
 *     cache     a dict this module keys by the record parts a view depends on (the views
 *               it holds are only read: the borrowed references stay valid for a row)
 *     extra     process: argv_columns(args) -> (cmdline, argv, cmdline_size), for arguments
 *               that are not UTF-8 or need a JSON escape;
 *               socket: sockaddr_of(saddr hex) -> (family, address, port, path)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define CACHE_LIMIT 4096 /* views kept per query before the cache is cleared */

static inline PyObject *new_ref(PyObject *o) /* Py_NewRef, which Python 3.9 lacks */
{
    Py_INCREF(o);
    return o;
}

static PyObject *s_pid, *s_parent, *s_cmdline, *s_argv, *s_cmdline_size, *s_time, *s_uptime,
    *s_time_ms, *s_serial, *s_family, *s_socket, *s_fd, *s_local_address, *s_local_port,
    *s_remote_address, *s_remote_port, *s_overflows, *s_empty, *s_empty_argv;

typedef struct {
    const char *p;
    Py_ssize_t n;
} span;

typedef struct {
    span arch, nr, success, exit_, a0, ppid, pid;
    Py_ssize_t after; /* just past the "):" that closes the record's audit(...) stamp */
    Py_ssize_t end;   /* _SYSCALL_HEAD's match end: where the task part starts */
} head_t;

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

static inline int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline int hex_value(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* Each class in _SYSCALL_HEAD is followed by a literal outside the class, so one left-to-right
 * pass decides the match as the regex does. */
#define LITERAL(lit)                                                                          \
    do {                                                                                      \
        Py_ssize_t len_ = (Py_ssize_t)sizeof(lit) - 1;                                        \
        if (end - i < len_ || memcmp(d + i, lit, (size_t)len_) != 0)                         \
            return 0;                                                                         \
        i += len_;                                                                            \
    } while (0)
#define RUN(test, out)                                                                        \
    do {                                                                                      \
        Py_ssize_t s_ = i;                                                                    \
        while (i < end && test(d[i]))                                                         \
            i++;                                                                              \
        if (i == s_)                                                                          \
            return 0;                                                                         \
        if (out) {                                                                            \
            ((span *)(out))->p = d + s_;                                                      \
            ((span *)(out))->n = i - s_;                                                      \
        }                                                                                     \
    } while (0)

static inline int is_stamp_char(char c) { return is_digit(c) || c == '.' || c == ':'; }

/* _SYSCALL_HEAD.match(data, start, end) */
static int parse_head(const char *d, Py_ssize_t start, Py_ssize_t end, head_t *h)
{
    Py_ssize_t i = start;
    LITERAL("audit(");
    RUN(is_stamp_char, NULL);
    LITERAL("):");
    h->after = i;
    if (i < end && d[i] == ' ')
        i++;
    LITERAL("arch=");
    RUN(is_hex, &h->arch);
    LITERAL(" syscall=");
    RUN(is_digit, &h->nr);
    LITERAL(" success=");
    if (end - i >= 3 && memcmp(d + i, "yes", 3) == 0) {
        h->success.p = d + i;
        h->success.n = 3;
        i += 3;
    }
    else if (end - i >= 2 && memcmp(d + i, "no", 2) == 0) {
        h->success.p = d + i;
        h->success.n = 2;
        i += 2;
    }
    else
        return 0;
    LITERAL(" exit=");
    {
        Py_ssize_t s = i;
        if (i < end && d[i] == '-')
            i++;
        RUN(is_digit, NULL);
        h->exit_.p = d + s;
        h->exit_.n = i - s;
    }
    LITERAL(" a0=");
    RUN(is_hex, &h->a0);
    LITERAL(" a1=");
    RUN(is_hex, NULL);
    LITERAL(" a2=");
    RUN(is_hex, NULL);
    LITERAL(" a3=");
    RUN(is_hex, NULL);
    LITERAL(" items=");
    RUN(is_digit, NULL);
    LITERAL(" ppid=");
    RUN(is_digit, &h->ppid);
    LITERAL(" pid=");
    RUN(is_digit, &h->pid);
    LITERAL(" ");
    h->end = i;
    if (end - i < 5 || memcmp(d + i, "auid=", 5) != 0) /* (?=auid=) */
        return 0;
    return 1;
}

/* The run's lists, read as rows.py's loops read them. */
typedef struct {
    PyObject *run, *data, *offsets, *starts, *types, *stamps, *indices;
    const char *d;
    Py_ssize_t size;
} run_t;

static int open_run(PyObject *run, run_t *r)
{
    if (!PyTuple_Check(run) || PyTuple_GET_SIZE(run) != 6) {
        PyErr_SetString(PyExc_TypeError, "a Run (data, offsets, starts, types, stamps, indices)");
        return -1;
    }
    r->run = run;
    r->data = PyTuple_GET_ITEM(run, 0);
    r->offsets = PyTuple_GET_ITEM(run, 1);
    r->starts = PyTuple_GET_ITEM(run, 2);
    r->types = PyTuple_GET_ITEM(run, 3);
    r->stamps = PyTuple_GET_ITEM(run, 4);
    r->indices = PyTuple_GET_ITEM(run, 5);
    if (!PyBytes_Check(r->data) || !PyList_Check(r->offsets) || !PyList_Check(r->starts) ||
        !PyList_Check(r->types) || !PyList_Check(r->stamps) || !PyList_Check(r->indices)) {
        PyErr_SetString(PyExc_TypeError, "a Run of bytes and lists");
        return -1;
    }
    r->d = PyBytes_AS_STRING(r->data);
    r->size = PyBytes_GET_SIZE(r->data);
    return 0;
}

/* list[i] as a Py_ssize_t; -1 with an exception set when out of range or not an int. */
static Py_ssize_t list_index(PyObject *list, Py_ssize_t i)
{
    if (i < 0 || i >= PyList_GET_SIZE(list)) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return -1;
    }
    return PyLong_AsSsize_t(PyList_GET_ITEM(list, i));
}

#define INDEX(out, list, i)                                                                   \
    do {                                                                                      \
        (out) = list_index((list), (i));                                                      \
        if ((out) == -1 && PyErr_Occurred())                                                  \
            goto error;                                                                       \
    } while (0)

/* data[start:stop] as Python slices it (clamped; empty when start > stop). */
static span slice_of(const run_t *r, Py_ssize_t start, Py_ssize_t stop)
{
    span s;
    if (start < 0)
        start = 0;
    if (stop > r->size)
        stop = r->size;
    s.p = r->d + (start < r->size ? start : r->size);
    s.n = stop > start ? stop - start : 0;
    return s;
}

static PyObject *bytes_of(span s) { return PyBytes_FromStringAndSize(s.p, s.n); }

/* int(digits) for a run of decimal digits, optionally signed. */
/* A decimal of at most 18 characters (-?[0-9]+, checked by the caller) as a long long: 1
 * and *out set, or 0 for a longer one (int_of then reads it as a Python int). */
static int short_decimal(span s, long long *out)
{
    if (s.n > 18)
        return 0;
    long long value = 0;
    int negative = s.n && s.p[0] == '-';
    for (Py_ssize_t i = negative; i < s.n; i++)
        value = value * 10 + (s.p[i] - '0');
    *out = negative ? -value : value;
    return 1;
}

static PyObject *int_of(span s)
{
    long long number;
    if (short_decimal(s, &number))
        return PyLong_FromLongLong(number);
    PyObject *text = PyUnicode_FromStringAndSize(s.p, s.n);
    if (text == NULL)
        return NULL;
    PyObject *value = PyLong_FromUnicodeObject(text, 10);
    Py_DECREF(text);
    return value;
}

/* A str of the ASCII text out[0:n]. */
static PyObject *ascii_text(const char *out, Py_ssize_t n)
{
    PyObject *text = PyUnicode_New(n, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), out, (size_t)n);
    return text;
}

/* Writes `value` in decimal at out (room for 20 digits); the digit count. */
static int decimal(unsigned long long value, char *out)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (int k = 0; k < n; k++)
        out[k] = digits[n - 1 - k];
    return n;
}

/* str(int(hex, 16)) */
static PyObject *hex_decimal_text(span s)
{
    Py_ssize_t i = 0;
    while (i < s.n - 1 && s.p[i] == '0')
        i++;
    if (s.n - i <= 16) {
        unsigned long long value = 0;
        for (; i < s.n; i++)
            value = (value << 4) | (unsigned long long)hex_value(s.p[i]);
        char out[20];
        return ascii_text(out, decimal(value, out));
    }
    PyObject *text = PyUnicode_FromStringAndSize(s.p, s.n);
    if (text == NULL)
        return NULL;
    PyObject *value = PyLong_FromUnicodeObject(text, 16);
    Py_DECREF(text);
    if (value == NULL)
        return NULL;
    PyObject *decimal = PyObject_Str(value);
    Py_DECREF(value);
    return decimal;
}

/* How the query wants values: typed, or the text form (integer None = typed). */
typedef struct {
    PyObject *integer, *null;
    double boot_time;
} form_t;

/* `value` (a new reference, may be NULL on error) in the query's form; steals it. */
static PyObject *in_form(const form_t *f, PyObject *value)
{
    if (value == NULL || f->integer == NULL)
        return value;
    if (value == Py_None) {
        Py_DECREF(value);
        Py_INCREF(f->null);
        return f->null;
    }
    PyObject *text = f->integer == (PyObject *)&PyUnicode_Type
                         ? PyObject_Str(value)
                         : PyObject_CallOneArg(f->integer, value);
    Py_DECREF(value);
    return text;
}

/* row[key] = value, stealing value; -1 on error. */
static int put(PyObject *row, PyObject *key, PyObject *value)
{
    if (value == NULL)
        return -1;
    int failed = PyDict_SetItem(row, key, value);
    Py_DECREF(value);
    return failed;
}

enum {
    W_TIME = 1 << 0,
    W_UPTIME = 1 << 1,
    W_TIME_MS = 1 << 2,
    W_SERIAL = 1 << 3,
    W_PID = 1 << 4,
    W_PARENT = 1 << 5,
    W_CMDLINE = 1 << 6,
    W_ARGV = 1 << 7,
    W_CMDLINE_SIZE = 1 << 8,
    W_FAMILY = 1 << 9,
    W_SOCKET = 1 << 10,
    W_FD = 1 << 11,
    W_LOCAL_ADDRESS = 1 << 12,
    W_LOCAL_PORT = 1 << 13,
    W_REMOTE_ADDRESS = 1 << 14,
    W_REMOTE_PORT = 1 << 15,
    W_OVERFLOWS = 1 << 16,
};

static int wanted_flags(PyObject *wanted, long *flags)
{
    PyObject *keys[] = {s_time,   s_uptime,        s_time_ms,      s_serial,
                        s_pid,    s_parent,        s_cmdline,      s_argv,
                        s_cmdline_size, s_family,  s_socket,       s_fd,
                        s_local_address, s_local_port, s_remote_address, s_remote_port,
                        s_overflows};
    *flags = 0;
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        int found = PySequence_Contains(wanted, keys[k]);
        if (found < 0)
            return -1;
        if (found)
            *flags |= 1L << k;
    }
    return 0;
}

/* The last value of one column and its cell: rows of a scan often repeat a value (the same
 * second's uptime, one process's pid, one peer's address), and the cell of an int or str is
 * immutable, so the row before's object serves again instead of a new one made and freed. */
typedef struct {
    long long key;
    PyObject *cell; /* NULL: nothing yet */
} memo_t;

/* The cell of the number v in the query's form (in_form), from the memo when v repeats. */
static PyObject *memo_number(memo_t *m, long long v, const form_t *f)
{
    if (m->cell == NULL || m->key != v) {
        PyObject *cell = in_form(f, PyLong_FromLongLong(v));
        if (cell == NULL)
            return NULL;
        Py_XSETREF(m->cell, cell);
        m->key = v;
    }
    return new_ref(m->cell);
}

/* int_of(s) in the query's form, from the memo when it repeats. */
static PyObject *memo_int_of(memo_t *m, span s, const form_t *f)
{
    long long value;
    return short_decimal(s, &value) ? memo_number(m, value, f) : in_form(f, int_of(s));
}

/* A scan's memos (memo_t): uptime, pid, the peer's port, and its dotted IPv4 text by the 8
 * hex digits it was read from. */
typedef struct {
    memo_t uptime, pid, port;
    char ip_hex[8];
    PyObject *ip;
} memos_t;

static void memos_clear(memos_t *m)
{
    Py_CLEAR(m->uptime.cell);
    Py_CLEAR(m->pid.cell);
    Py_CLEAR(m->port.cell);
    Py_CLEAR(m->ip);
}

/* rows.py's _times_setter: time, uptime, time_ms and serial from the run's stamps. */
static int put_times(PyObject *row, const run_t *r, Py_ssize_t index, long flags,
                     const form_t *f, memo_t *uptime_memo)
{
    if (!(flags & (W_TIME | W_UPTIME | W_TIME_MS | W_SERIAL)))
        return 0;
    Py_ssize_t at = 3 * index;
    if (at < 0 || at + 2 >= PyList_GET_SIZE(r->stamps)) {
        PyErr_SetString(PyExc_IndexError, "list index out of range");
        return -1;
    }
    PyObject *sec = PyList_GET_ITEM(r->stamps, at);
    PyObject *msec = PyList_GET_ITEM(r->stamps, at + 1);
    if (flags & W_TIME) {
        Py_INCREF(sec);
        if (put(row, s_time, in_form(f, sec)) < 0)
            return -1;
    }
    if (flags & (W_UPTIME | W_TIME_MS)) {
        long long s = PyLong_AsLongLong(sec), m = PyLong_AsLongLong(msec);
        if ((s == -1 || m == -1) && PyErr_Occurred())
            return -1;
        if (flags & W_UPTIME) {
            /* int(sec + msec / 1000 - boot_time): the same double operations as Python's */
            double uptime = (double)s + (double)m / 1000.0 - f->boot_time;
            PyObject *value;
            if (uptime > -1.0 && uptime < 9.0e18) {
                long long whole = (long long)uptime; /* truncation, as int() */
                value = whole >= 0 ? memo_number(uptime_memo, whole, f)
                                   : in_form(f, new_ref(Py_None));
            }
            else if (uptime <= -1.0)
                value = in_form(f, new_ref(Py_None));
            else {
                PyObject *real = PyFloat_FromDouble(uptime);
                value = in_form(f, real == NULL ? NULL : PyNumber_Long(real));
                Py_XDECREF(real);
            }
            if (put(row, s_uptime, value) < 0)
                return -1;
        }
        if (flags & W_TIME_MS) {
            PyObject *value;
            if (s > -9000000000000000LL && s < 9000000000000000LL &&
                m > -1000000000LL && m < 1000000000LL)
                value = PyLong_FromLongLong(s * 1000 + m);
            else {
                PyObject *thousand = PyLong_FromLong(1000);
                PyObject *scaled = thousand ? PyNumber_Multiply(sec, thousand) : NULL;
                value = scaled ? PyNumber_Add(scaled, msec) : NULL;
                Py_XDECREF(thousand);
                Py_XDECREF(scaled);
            }
            if (put(row, s_time_ms, in_form(f, value)) < 0)
                return -1;
        }
    }
    if (flags & W_SERIAL) {
        PyObject *serial = PyList_GET_ITEM(r->stamps, at + 2);
        Py_INCREF(serial);
        if (put(row, s_serial, in_form(f, serial)) < 0)
            return -1;
    }
    return 0;
}

/* The cache key of a view: each part with its length before it (-1: None). */
static PyObject *view_key(const span *parts, Py_ssize_t count)
{
    Py_ssize_t total = 0;
    for (Py_ssize_t k = 0; k < count; k++)
        total += 4 + (parts[k].p != NULL ? parts[k].n : 0);
    PyObject *key = PyBytes_FromStringAndSize(NULL, total);
    if (key == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(key);
    for (Py_ssize_t k = 0; k < count; k++) {
        uint32_t length = parts[k].p != NULL ? (uint32_t)parts[k].n : 0xFFFFFFFFu;
        memcpy(out, &length, 4);
        out += 4;
        if (parts[k].p != NULL) {
            memcpy(out, parts[k].p, (size_t)parts[k].n);
            out += parts[k].n;
        }
    }
    return key;
}

/* cache[key], else view_of(*args) stored under key; a borrowed reference, NULL on error. */
static PyObject *cached_view(PyObject *cache, PyObject *key, PyObject *view_of, PyObject *args)
{
    PyObject *found = PyDict_GetItemWithError(cache, key);
    if (found != NULL || PyErr_Occurred())
        return found;
    PyObject *made = PyObject_Call(view_of, args, NULL);
    if (made == NULL)
        return NULL;
    if (PyDict_GET_SIZE(cache) >= CACHE_LIMIT)
        PyDict_Clear(cache);
    int failed = PyDict_SetItem(cache, key, made);
    Py_DECREF(made); /* the cache holds it */
    return failed < 0 ? NULL : made;
}

static int append_slow(PyObject *rows, PyObject *slow, const run_t *r, PyObject *index)
{
    PyObject *row = PyObject_CallFunctionObjArgs(slow, r->run, index, NULL);
    if (row == NULL)
        return -1;
    int failed = PyList_Append(rows, row);
    Py_DECREF(row);
    return failed;
}

typedef struct {
    PyObject *wanted, *view_of, *slow, *shape_of, *cache, *extra;
    form_t form;
    long flags;
} query_t;

static int open_query(PyObject *query, query_t *q)
{
    PyObject *boot, *integer;
    if (!PyArg_ParseTuple(query, "OOOOOOOOO", &q->wanted, &boot, &integer, &q->form.null,
                          &q->view_of, &q->slow, &q->shape_of, &q->cache, &q->extra))
        return -1;
    if (!PyDict_Check(q->cache)) {
        PyErr_SetString(PyExc_TypeError, "the view cache is a dict");
        return -1;
    }
    q->form.boot_time = PyFloat_AsDouble(boot);
    if (q->form.boot_time == -1.0 && PyErr_Occurred())
        return -1;
    q->form.integer = integer == Py_None ? NULL : integer;
    return wanted_flags(q->wanted, &q->flags);
}

/* The arguments of process_run and socket_run: (run, query, rows: list). */
static int open_call(const char *name, PyObject *const *args, Py_ssize_t nargs, run_t *r,
                     query_t *q)
{
    if (nargs != 3 || !PyList_Check(args[2])) {
        PyErr_Format(PyExc_TypeError, "%s(run, query, rows: list)", name);
        return -1;
    }
    return open_run(args[0], r) < 0 || open_query(args[1], q) < 0 ? -1 : 0;
}

/* What split_fields splits words on (rows.py's _WHITESPACE: \s and \x1c-\x1f). */
static inline int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* An argument: where its bytes are (in the record, or decoded into the scratch buffer). */
typedef span arg_t;

/* rows.py's _value_bytes: a raw value's bytes; p NULL for a quote left open. */
static arg_t value_bytes(const char *raw, Py_ssize_t n, char **scratch)
{
    arg_t out = {raw, n};
    if (n >= 1 && raw[0] == '"') {
        out.p = (n > 1 && raw[n - 1] == '"') ? raw + 1 : NULL;
        out.n = n - 2;
        return out;
    }
    if ((n == 6 && memcmp(raw, "(null)", 6) == 0) || (n == 1 && raw[0] == '?')) {
        out.n = 0;
        return out;
    }
    if (n % 2 == 0) {
        Py_ssize_t i = 0;
        while (i < n && is_hex(raw[i]))
            i++;
        if (i == n) { /* bytes.fromhex */
            char *o = *scratch;
            for (i = 0; i < n; i += 2)
                o[i / 2] = (char)(hex_value(raw[i]) * 16 + hex_value(raw[i + 1]));
            out.p = o;
            out.n = n / 2;
            *scratch += n / 2;
        }
    }
    return out;
}

/* rows.py's _fast_argv over an EXECVE payload d[a:b]: the arguments into `args` (room for
 * b - a of them; hex ones decoded into `scratch`, b - a bytes), their count, or -1 when the
 * payload is not of a shape it takes. */
static Py_ssize_t fast_argv(const char *d, Py_ssize_t a, Py_ssize_t b, arg_t *args, char *scratch)
{
    /* _body: after the first "): " at or after offset 6; NULs and newlines stripped at the end */
    Py_ssize_t i = a + 6, start = -1;
    for (; i + 2 <= b; i++) {
        const char *at = memchr(d + i, ')', (size_t)(b - i));
        if (at == NULL)
            break;
        i = at - d;
        if (i + 2 <= b && at[1] == ':') {
            start = i + 2;
            break;
        }
    }
    if (start < 0)
        return -1;
    if (start < b && d[start] == ' ')
        start++;
    Py_ssize_t end = b;
    while (end > start && (d[end - 1] == '\0' || d[end - 1] == '\n'))
        end--;
    /* Every argument quoted: the text between the quotes exactly argc=N a0= .. aN-1=. */
    Py_ssize_t quotes = 0;
    for (i = start; i < end; i++)
        quotes += d[i] == '"';
    if (quotes % 2 == 0) {
        Py_ssize_t count = quotes / 2, k = 0;
        int fits = 1;
        i = start;
        char key[48];
        for (; fits && k <= count; k++) {
            int length = count == 0 ? snprintf(key, sizeof key, "argc=0")
                         : k == 0   ? snprintf(key, sizeof key, "argc=%zd a0=", count)
                         : k < count ? snprintf(key, sizeof key, " a%zd=", k)
                                     : 0;
            const char *quote = memchr(d + i, '"', (size_t)(end - i));
            Py_ssize_t stop = quote != NULL ? quote - d : end;
            if (stop - i != length || memcmp(d + i, key, (size_t)length) != 0) {
                fits = 0;
                break;
            }
            if (k == count)
                break;
            Py_ssize_t value = stop + 1;
            const char *close = memchr(d + value, '"', (size_t)(end - value));
            for (Py_ssize_t j = value; j < close - d; j++)
                if (is_space((unsigned char)d[j])) {
                    fits = 0;
                    break;
                }
            args[k].p = d + value;
            args[k].n = close - d - value;
            i = close - d + 1;
        }
        if (fits && i == end)
            return count;
        if (fits && count == 0) /* "argc=0" and nothing after it */
            return end - start == 6 ? 0 : -1;
    }
    /* Else split at spaces: argc=N then a0=.. aN-1=, each value as _value_bytes reads it. */
    Py_ssize_t parts = 1;
    for (i = start; i < end; i++)
        parts += d[i] == ' ';
    const char *space = memchr(d + start, ' ', (size_t)(end - start));
    Py_ssize_t head_end = space != NULL ? space - d : end;
    if (head_end - start < 6 || memcmp(d + start, "argc=", 5) != 0)
        return -1;
    Py_ssize_t argc = 0;
    for (i = start + 5; i < head_end; i++) {
        if (!is_digit(d[i]))
            return -1;
        argc = argc * 10 + (d[i] - '0');
        if (argc > parts)
            return -1;
    }
    if (argc != parts - 1)
        return -1;
    i = head_end;
    for (Py_ssize_t k = 0; k < argc; k++) {
        Py_ssize_t s = i + 1; /* past the space */
        const char *next = memchr(d + s, ' ', (size_t)(end - s));
        Py_ssize_t e = next != NULL ? next - d : end;
        const char *eq = memchr(d + s, '=', (size_t)(e - s));
        if (eq == NULL)
            return -1;
        char key[32];
        int length = snprintf(key, sizeof key, "a%zd", k);
        if (eq - (d + s) != length || memcmp(d + s, key, (size_t)length) != 0)
            return -1;
        Py_ssize_t raw = eq - d + 1;
        for (Py_ssize_t j = raw; j < e; j++)
            if (is_space((unsigned char)d[j]))
                return -1;
        args[k] = value_bytes(d + raw, e - raw, &scratch);
        if (args[k].p == NULL)
            return -1;
        i = e;
    }
    return argc;
}

/* argv_columns(args) -> (cmdline, argv, cmdline_size): here when the arguments are UTF-8
 * and need no JSON escape, else by rows.py's argv_columns. 0 on success, -1 on error. */
static int argv_texts(const arg_t *args, Py_ssize_t count, PyObject *argv_columns,
                      PyObject **cmdline, PyObject **argv, Py_ssize_t *size)
{
    if (count == 0) {
        *cmdline = new_ref(s_empty);
        *argv = new_ref(s_empty_argv);
        *size = 0;
        return 0;
    }
    Py_ssize_t joined = count - 1;
    int escape = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        joined += args[k].n;
        for (Py_ssize_t j = 0; j < args[k].n && !escape; j++) {
            unsigned char c = (unsigned char)args[k].p[j];
            escape = c == '"' || c == '\\' || c < 0x20;
        }
    }
    if (!escape) {
        PyObject *line = PyBytes_FromStringAndSize(NULL, joined);
        PyObject *json = PyBytes_FromStringAndSize(NULL, joined + 4 + 3 * (count - 1));
        if (line == NULL || json == NULL) {
            Py_XDECREF(line);
            Py_XDECREF(json);
            return -1;
        }
        char *lo = PyBytes_AS_STRING(line), *jo = PyBytes_AS_STRING(json);
        *jo++ = '[';
        *jo++ = '"';
        for (Py_ssize_t k = 0; k < count; k++) {
            if (k) {
                *lo++ = ' ';
                memcpy(jo, "\", \"", 4);
                jo += 4;
            }
            memcpy(lo, args[k].p, (size_t)args[k].n);
            lo += args[k].n;
            memcpy(jo, args[k].p, (size_t)args[k].n);
            jo += args[k].n;
        }
        *jo++ = '"';
        *jo = ']';
        PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(line), joined, NULL);
        PyObject *array = text == NULL ? NULL
                                       : PyUnicode_DecodeUTF8(PyBytes_AS_STRING(json),
                                                              PyBytes_GET_SIZE(json), NULL);
        Py_DECREF(line);
        Py_DECREF(json);
        if (array != NULL) {
            *cmdline = text;
            *argv = array;
            *size = joined;
            return 0;
        }
        Py_XDECREF(text);
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            return -1;
        PyErr_Clear(); /* not UTF-8: argv_columns writes its escapes */
    }
    PyObject *list = PyList_New(count);
    if (list == NULL)
        return -1;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *arg = PyBytes_FromStringAndSize(args[k].p, args[k].n);
        if (arg == NULL) {
            Py_DECREF(list);
            return -1;
        }
        PyList_SET_ITEM(list, k, arg);
    }
    PyObject *found = PyObject_CallOneArg(argv_columns, list);
    Py_DECREF(list);
    if (found == NULL)
        return -1;
    if (!PyArg_ParseTuple(found, "OOn", cmdline, argv, size)) {
        Py_DECREF(found);
        return -1;
    }
    Py_INCREF(*cmdline);
    Py_INCREF(*argv);
    Py_DECREF(found);
    return 0;
}

/* The argument columns of the EXECVE payload d[a:b]: 1 set, 0 when _fast_argv does not take
 * it (the careful way then), -1 on error. */
static int exec_argv(const char *d, Py_ssize_t a, Py_ssize_t b, PyObject *argv_columns,
                     PyObject **cmdline, PyObject **argv, Py_ssize_t *size)
{
    Py_ssize_t room = b - a + 1;
    arg_t small_args[64];
    char small_scratch[4096];
    arg_t *args = room <= 64 ? small_args : PyMem_Malloc(sizeof(arg_t) * (size_t)room);
    char *scratch = room <= 4096 ? small_scratch : PyMem_Malloc((size_t)room);
    int result = -1;
    if (args == NULL || scratch == NULL)
        PyErr_NoMemory();
    else {
        Py_ssize_t count = fast_argv(d, a, b, args, scratch);
        result = count < 0 ? 0 : argv_texts(args, count, argv_columns, cmdline, argv, size) < 0 ? -1 : 1;
    }
    if (args != small_args)
        PyMem_Free(args);
    if (scratch != small_scratch)
        PyMem_Free(scratch);
    return result;
}

static PyObject *process_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    run_t r;
    query_t q;
    if (open_call("process_run", args, nargs, &r, &q) < 0)
        return NULL;
    PyObject *rows = args[2];
    memos_t memo = {0};
    const form_t *f = &q.form;
    long flags = q.flags;
    int with_args = (flags & (W_CMDLINE | W_ARGV | W_CMDLINE_SIZE | W_OVERFLOWS)) != 0;
    PyObject *last_types = NULL, *shape = NULL; /* shape: owned */
    Py_ssize_t execve_at = 0, cwd_at = -1, path_count = 0;
    Py_ssize_t paths_at[16];
    span parts[7 + 16];
    PyObject *index_obj = NULL;
    Py_ssize_t count = PyList_GET_SIZE(r.indices);
    for (Py_ssize_t n = 0; n < count; n++) {
        index_obj = PyList_GET_ITEM(r.indices, n);
        Py_ssize_t index = PyLong_AsSsize_t(index_obj);
        if (index == -1 && PyErr_Occurred())
            goto error;
        if (index < 0 || index >= PyList_GET_SIZE(r.types)) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            goto error;
        }
        PyObject *types = PyList_GET_ITEM(r.types, index);
        if (types != last_types) { /* events of one shape share their types tuple */
            last_types = types;
            Py_CLEAR(shape);
            if (PyTuple_CheckExact(types)) {
                shape = PyObject_CallOneArg(q.shape_of, types);
                if (shape == NULL)
                    goto error;
                if (shape == Py_None)
                    Py_CLEAR(shape);
            }
            path_count = -1;
            if (shape != NULL) {
                PyObject *paths;
                if (!PyArg_ParseTuple(shape, "nnO!", &execve_at, &cwd_at, &PyTuple_Type, &paths))
                    goto error;
                if (PyTuple_GET_SIZE(paths) <= 16) {
                    path_count = PyTuple_GET_SIZE(paths);
                    for (Py_ssize_t k = 0; k < path_count; k++) {
                        paths_at[k] = PyLong_AsSsize_t(PyTuple_GET_ITEM(paths, k));
                        if (paths_at[k] == -1 && PyErr_Occurred())
                            goto error;
                    }
                }
            }
        }
        Py_ssize_t first, start = 0, stop = 0;
        INDEX(first, r.starts, index);
        head_t h = {0};
        PyObject *view = NULL;
        if (shape != NULL && path_count >= 0) {
            INDEX(start, r.offsets, first);
            INDEX(stop, r.offsets, first + 1);
            if (0 <= start && start <= stop && stop <= r.size && parse_head(r.d, start, stop, &h)) {
                Py_ssize_t after = h.after - start, a, b;
                parts[0] = h.arch;
                parts[1] = h.nr;
                parts[2] = h.success;
                parts[3] = h.exit_;
                parts[4].p = r.d + h.end;
                parts[4].n = stop - h.end;
                parts[5].p = NULL;
                parts[5].n = 0;
                if (cwd_at >= 0) {
                    INDEX(a, r.offsets, first + cwd_at);
                    INDEX(b, r.offsets, first + cwd_at + 1);
                    parts[5] = slice_of(&r, a + after, b);
                }
                for (Py_ssize_t k = 0; k < path_count; k++) {
                    INDEX(a, r.offsets, first + paths_at[k]);
                    INDEX(b, r.offsets, first + paths_at[k] + 1);
                    parts[6 + k] = slice_of(&r, a + after, b);
                }
                PyObject *key = view_key(parts, 6 + path_count);
                if (key == NULL)
                    goto error;
                view = PyDict_GetItemWithError(q.cache, key);
                if (view == NULL && !PyErr_Occurred()) {
                    PyObject *call = PyTuple_New(7), *paths = PyTuple_New(path_count);
                    if (call == NULL || paths == NULL) {
                        Py_XDECREF(call);
                        Py_XDECREF(paths);
                        Py_DECREF(key);
                        goto error;
                    }
                    for (Py_ssize_t k = 0; k < path_count; k++)
                        PyTuple_SET_ITEM(paths, k, bytes_of(parts[6 + k]));
                    for (Py_ssize_t k = 0; k < 5; k++)
                        PyTuple_SET_ITEM(call, k, bytes_of(parts[k]));
                    PyTuple_SET_ITEM(call, 5,
                                     parts[5].p != NULL ? bytes_of(parts[5]) : new_ref(Py_None));
                    PyTuple_SET_ITEM(call, 6, paths);
                    if (PyErr_Occurred())
                        view = NULL;
                    else
                        view = cached_view(q.cache, key, q.view_of, call);
                    Py_DECREF(call);
                }
                Py_DECREF(key);
                if (view == NULL && PyErr_Occurred())
                    goto error;
                if (view == Py_None)
                    view = NULL;
            }
        }
        PyObject *cmdline = NULL, *argv = NULL;
        Py_ssize_t size = 0;
        if (view != NULL && with_args) {
            Py_ssize_t a, b;
            INDEX(a, r.offsets, first + execve_at);
            INDEX(b, r.offsets, first + execve_at + 1);
            span payload = slice_of(&r, a, b);
            int got = exec_argv(payload.p, 0, payload.n, q.extra, &cmdline, &argv, &size);
            if (got < 0)
                goto error;
            if (got == 0)
                view = NULL;
        }
        if (view == NULL) {
            if (append_slow(rows, q.slow, &r, index_obj) < 0)
                goto error;
            continue;
        }
        PyObject *row = PyDict_Copy(view);
        if (row == NULL) {
            Py_XDECREF(cmdline);
            Py_XDECREF(argv);
            goto error;
        }
        int failed = 0;
        if (flags & W_PID)
            failed |= put(row, s_pid, memo_int_of(&memo.pid, h.pid, f));
        if (cmdline != NULL) {
            if (flags & W_CMDLINE)
                failed |= put(row, s_cmdline, new_ref(cmdline));
            if (flags & W_CMDLINE_SIZE)
                failed |= put(row, s_cmdline_size, in_form(f, PyLong_FromSsize_t(size)));
            if (flags & W_ARGV)
                failed |= put(row, s_argv, new_ref(argv));
            Py_DECREF(cmdline);
            Py_DECREF(argv);
        }
        if (flags & W_PARENT)
            failed |= put(row, s_parent, in_form(f, int_of(h.ppid)));
        if (failed || put_times(row, &r, index, flags, f, &memo.uptime) < 0 ||
            PyList_Append(rows, row) < 0) {
            Py_DECREF(row);
            goto error;
        }
        Py_DECREF(row);
    }
    Py_XDECREF(shape);
    memos_clear(&memo);
    Py_RETURN_NONE;
error:
    Py_XDECREF(shape);
    memos_clear(&memo);
    return NULL;
}

/* _SADDR.search(data, start, end) with exactly one `saddr=` there: its hex digits. */
static int find_saddr(const char *d, Py_ssize_t start, Py_ssize_t end, span *hex)
{
    Py_ssize_t found = -1, i = start;
    while (end - i >= 6) {
        const char *at = memchr(d + i, 's', (size_t)(end - i - 5));
        if (at == NULL)
            break;
        Py_ssize_t q = at - d;
        if (memcmp(at, "saddr=", 6) == 0) {
            if (found >= 0)
                return 0; /* a second saddr=: the careful way */
            found = q;
            i = q + 6;
        }
        else
            i = q + 1;
    }
    if (found < 0)
        return 0;
    /* (?:^|[ :]) before it, inside the searched range */
    if (!(found == 0 || (found > start && (d[found - 1] == ' ' || d[found - 1] == ':'))))
        return 0;
    i = found + 6;
    Py_ssize_t s = i;
    while (i < end && is_hex(d[i]))
        i++;
    if (!(i == end || d[i] == ' ' || d[i] == '\0' || d[i] == '\n'))
        return 0;
    hex->p = d + s;
    hex->n = i - s;
    return hex->n % 2 == 0;
}

static PyObject *socket_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    run_t r;
    query_t q;
    if (open_call("socket_run", args, nargs, &r, &q) < 0)
        return NULL;
    PyObject *rows = args[2];
    memos_t memo = {0};
    const form_t plain = {0}; /* no text form: the port is formed below with the family */
    const form_t *f = &q.form;
    long flags = q.flags;
    int with_sockaddr = (flags & (W_FAMILY | W_SOCKET | W_LOCAL_ADDRESS | W_LOCAL_PORT |
                                  W_REMOTE_ADDRESS | W_REMOTE_PORT)) != 0;
    PyObject *last_types = NULL;
    Py_ssize_t sockaddr_at = -1;
    Py_ssize_t count = PyList_GET_SIZE(r.indices);
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *index_obj = PyList_GET_ITEM(r.indices, n);
        Py_ssize_t index = PyLong_AsSsize_t(index_obj);
        if (index == -1 && PyErr_Occurred())
            goto error;
        if (index < 0 || index >= PyList_GET_SIZE(r.types)) {
            PyErr_SetString(PyExc_IndexError, "list index out of range");
            goto error;
        }
        PyObject *types = PyList_GET_ITEM(r.types, index);
        if (types != last_types) {
            last_types = types;
            PyObject *at = PyObject_CallOneArg(q.shape_of, types);
            if (at == NULL)
                goto error;
            sockaddr_at = PyLong_AsSsize_t(at);
            Py_DECREF(at);
            if (sockaddr_at == -1 && PyErr_Occurred())
                goto error;
        }
        Py_ssize_t first = 0, start = 0, stop = 0;
        head_t h = {0};
        span hex = {0};
        PyObject *view = NULL;
        int is_bind = 0;
        INDEX(first, r.starts, index);
        if (sockaddr_at > 0) {
            Py_ssize_t a, b;
            INDEX(start, r.offsets, first);
            INDEX(stop, r.offsets, first + 1);
            INDEX(a, r.offsets, first + sockaddr_at);
            INDEX(b, r.offsets, first + sockaddr_at + 1);
            if (0 <= start && start <= stop && stop <= r.size && 0 <= a && a <= b &&
                b <= r.size && parse_head(r.d, start, stop, &h) &&
                find_saddr(r.d, a, b, &hex)) {
                span parts[5] = {h.arch, h.nr, h.success, h.exit_, {r.d + h.end, stop - h.end}};
                PyObject *key = view_key(parts, 5);
                if (key == NULL)
                    goto error;
                PyObject *found = PyDict_GetItemWithError(q.cache, key);
                if (found == NULL && !PyErr_Occurred()) {
                    PyObject *call = Py_BuildValue("(y#y#y#y#y#)", parts[0].p, parts[0].n,
                                                   parts[1].p, parts[1].n, parts[2].p,
                                                   parts[2].n, parts[3].p, parts[3].n,
                                                   parts[4].p, parts[4].n);
                    if (call != NULL) {
                        found = cached_view(q.cache, key, q.view_of, call);
                        Py_DECREF(call);
                    }
                }
                Py_DECREF(key);
                if (found == NULL)
                    goto error;
                if (found != Py_None) {
                    if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 2) {
                        PyErr_SetString(PyExc_TypeError, "view_of gives (view, is_bind)");
                        goto error;
                    }
                    view = PyTuple_GET_ITEM(found, 0);
                    is_bind = PyObject_IsTrue(PyTuple_GET_ITEM(found, 1));
                }
            }
        }
        if (view == NULL) {
            if (append_slow(rows, q.slow, &r, index_obj) < 0)
                goto error;
            continue;
        }
        PyObject *row = PyDict_Copy(view);
        if (row == NULL)
            goto error;
        int failed = 0;
        if (with_sockaddr) {
            PyObject *family, *ip, *port, *path;
            if (hex.n >= 16 && memcmp(hex.p, "0200", 4) == 0) { /* AF_INET, read in place */
                const char *x = hex.p;
                long number = 0;
                for (int k = 4; k < 8; k++)
                    number = (number << 4) | hex_value(x[k]);
                family = PyLong_FromLong(2);
                port = memo_number(&memo.port, number, &plain);
                if (memo.ip != NULL && memcmp(memo.ip_hex, x + 8, 8) == 0)
                    ip = new_ref(memo.ip);
                else {
                    char dotted[16];
                    int length = 0;
                    for (int k = 8; k < 16; k += 2) { /* inet_ntoa */
                        if (k > 8)
                            dotted[length++] = '.';
                        length += decimal(
                            (unsigned)(hex_value(x[k]) * 16 + hex_value(x[k + 1])), dotted + length);
                    }
                    ip = ascii_text(dotted, length);
                    if (ip != NULL) {
                        Py_XSETREF(memo.ip, new_ref(ip));
                        memcpy(memo.ip_hex, x + 8, 8);
                    }
                }
                path = new_ref(Py_None);
            }
            else {
                PyObject *saddr = bytes_of(hex);
                PyObject *got = saddr ? PyObject_CallOneArg(q.extra, saddr) : NULL;
                Py_XDECREF(saddr);
                if (got == NULL || !PyArg_ParseTuple(got, "OOOO", &family, &ip, &port, &path)) {
                    Py_XDECREF(got);
                    Py_DECREF(row);
                    goto error;
                }
                Py_INCREF(family);
                Py_INCREF(ip);
                Py_INCREF(port);
                Py_INCREF(path);
                Py_DECREF(got);
            }
            family = in_form(f, family);
            port = in_form(f, port);
            if (f->integer != NULL) { /* a str or None each */
                if (ip == Py_None) {
                    Py_DECREF(ip);
                    ip = new_ref(f->null);
                }
                if (path == Py_None) {
                    Py_DECREF(path);
                    path = new_ref(f->null);
                }
            }
            if (family == NULL || port == NULL || ip == NULL || path == NULL) {
                Py_XDECREF(family);
                Py_XDECREF(port);
                Py_XDECREF(ip);
                Py_XDECREF(path);
                Py_DECREF(row);
                goto error;
            }
            if (flags & W_FAMILY)
                failed |= put(row, s_family, new_ref(family));
            /* the local side for bind, the remote side else (_socket_columns) */
            if (flags & (is_bind ? W_LOCAL_ADDRESS : W_REMOTE_ADDRESS))
                failed |= put(row, is_bind ? s_local_address : s_remote_address, new_ref(ip));
            if (flags & (is_bind ? W_LOCAL_PORT : W_REMOTE_PORT))
                failed |= put(row, is_bind ? s_local_port : s_remote_port, new_ref(port));
            if (flags & W_SOCKET)
                failed |= put(row, s_socket, new_ref(path));
            Py_DECREF(family);
            Py_DECREF(port);
            Py_DECREF(ip);
            Py_DECREF(path);
        }
        if (flags & W_PID)
            failed |= put(row, s_pid, memo_int_of(&memo.pid, h.pid, f));
        if (flags & W_FD)
            failed |= put(row, s_fd, hex_decimal_text(h.a0));
        if (failed || put_times(row, &r, index, flags, f, &memo.uptime) < 0 ||
            PyList_Append(rows, row) < 0) {
            Py_DECREF(row);
            goto error;
        }
        Py_DECREF(row);
    }
    memos_clear(&memo);
    Py_RETURN_NONE;
error:
    memos_clear(&memo);
    return NULL;
}

/* blocks.item_runs' grouping: the items (in eid order) as (block, [index, ...]) for each
 * stretch of one block's (block, index) items, and (item, None) for any other item. */
static PyObject *block_groups(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyList_Check(args[0]) || !PyType_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "block_groups(items: list, block_type)");
        return NULL;
    }
    PyObject *items = args[0], *block_type = args[1];
    PyObject *groups = PyList_New(0), *block = NULL, *indices = NULL;
    if (groups == NULL)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *item = PyList_GET_ITEM(items, n);
        PyObject *held = PyTuple_Check(item) && PyTuple_GET_SIZE(item) == 2
                             ? PyTuple_GET_ITEM(item, 0)
                             : NULL;
        if (held != NULL && held == block) {
            if (PyList_Append(indices, PyTuple_GET_ITEM(item, 1)) < 0)
                goto error;
            continue;
        }
        block = NULL;
        PyObject *group;
        if (held != NULL && Py_TYPE(held) == (PyTypeObject *)block_type) {
            block = held;
            indices = PyList_New(1);
            if (indices == NULL)
                goto error;
            PyObject *index = PyTuple_GET_ITEM(item, 1);
            Py_INCREF(index);
            PyList_SET_ITEM(indices, 0, index);
            group = PyTuple_Pack(2, block, indices);
            Py_DECREF(indices); /* the group holds it; appended to while its block lasts */
        }
        else
            group = PyTuple_Pack(2, item, Py_None);
        if (group == NULL || PyList_Append(groups, group) < 0) {
            Py_XDECREF(group);
            goto error;
        }
        Py_DECREF(group);
    }
    return groups;
error:
    Py_DECREF(groups);
    return NULL;
}

static PyMethodDef methods[] = {
    {"block_groups", (PyCFunction)(void (*)(void))block_groups, METH_FASTCALL,
     "block_groups(items, block_type): the items grouped by block, as item_runs reads them."},
    {"process_run", (PyCFunction)(void (*)(void))process_run, METH_FASTCALL,
     "process_run(run, query, rows): append each selected item's process_events row."},
    {"socket_run", (PyCFunction)(void (*)(void))socket_run, METH_FASTCALL,
     "socket_run(run, query, rows): append each selected item's socket_events row."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_rowsfast", "Compiled fast paths of events/rows.py.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rowsfast(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&s_pid, "pid"},
        {&s_parent, "parent"},
        {&s_cmdline, "cmdline"},
        {&s_argv, "argv"},
        {&s_cmdline_size, "cmdline_size"},
        {&s_time, "time"},
        {&s_uptime, "uptime"},
        {&s_time_ms, "time_ms"},
        {&s_serial, "serial"},
        {&s_family, "family"},
        {&s_socket, "socket"},
        {&s_fd, "fd"},
        {&s_local_address, "local_address"},
        {&s_local_port, "local_port"},
        {&s_remote_address, "remote_address"},
        {&s_remote_port, "remote_port"},
        {&s_overflows, "overflows"},
        {&s_empty, ""},
        {&s_empty_argv, "[]"},
    };
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        *names[k].slot = PyUnicode_InternFromString(names[k].text);
        if (*names[k].slot == NULL)
            return NULL;
    }
    return PyModule_Create(&module_def);
}
