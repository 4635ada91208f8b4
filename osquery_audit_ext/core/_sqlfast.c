/* Compiled fast paths of core/sql.py's _converted and _statement_rows, and the generate
 * reply decoder that feeds _converted's rows to SQLite without thrift's dicts.
 *
 * Optional: sql.py uses this module when it imports (scripts/build_accel.py compiles it in
 * place at `make install`) and its own C-builtin loops otherwise; the same tests run on both
 * (tests/core/test_sql_fast.py). reply_rows' twin is thrift's own decoder followed by
 * _converted, which it is tested against (tests/core/test_reply_rows.py). The values' rules stay in sdk/values.py: this file turns a
 * plain decimal into an int (what every extension sends for a number) and a str, an int or
 * None into its text, and calls back into Python for every other value.
 *
 * typed_rows(rows, columns) -> list of tuples, or None
 *   rows: the extension's rows (dicts of str). columns: one (key, low, high, convert) per
 *   table column: key None for a column the query does not use (its value None); convert
 *   None for TEXT/BLOB (the value as it is); else low/high the range in which a plain
 *   decimal (-?(0|[1-9][0-9]*), ASCII) is the column's value as int (None: never), and
 *   convert(text) the column's value for any other text. Each tuple is the row's values in
 *   column order (a key the row lacks reads as "", as osquery's core reads it), then the
 *   row's position. None when a row is not a dict: sql.py's careful path then reads it.
 *
 * reply_rows(columns, read) -> (status, rows, rowids), or None
 *   An extension's reply to a generate call (the call_result struct after the message
 *   header) read as it arrives, straight into typed_rows' tuples (columns as there), so
 *   that no dict of str is built per row only to be typed and dropped. read(n) gives 1..n
 *   more bytes and raises at the end. Decodes as thrift's fastbinary does (unknown fields
 *   skipped, strings UTF-8 with errors "replace", a field or key given twice: the last);
 *   status is (code, message, uuid), each None when absent; rows and rowids None when the
 *   reply has no rows; rowids each row's "rowid" text (None where it has none), or None
 *   when no row has one. None when the reply has no result. Bytes that are no such reply
 *   raise ValueError("malformed reply: ...").
 *
 * text_rows(rows, columns, nullvalue, as_text) -> list of dicts, or None
 *   rows: SQLite's result tuples; each becomes {column: text}: a str as it is, None as
 *   nullvalue, an int (not a bool) in decimal, anything else as_text(value). None when a
 *   row's width is not len(columns).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../sdk/_thriftread.h" /* the reply as it arrives: stream_t, read_*, skip */

/* The n bytes at s as a plain decimal in [low, high]: 1 and *out set, else 0. Bytes, so
 * that reply_rows reads a number off the wire without making its str first. */
static int plain_decimal_chars(const char *s, Py_ssize_t n, long long low, long long high,
                               long long *out)
{
    Py_ssize_t i = 0;
    int negative = n > 0 && s[0] == '-';
    i = negative;
    Py_ssize_t digits = n - i;
    if (digits < 1 || digits > 18 || (s[i] == '0' && digits > 1))
        return 0;
    long long value = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        value = value * 10 + (s[i] - '0');
    }
    if (negative)
        value = -value;
    if (value < low || value > high)
        return 0;
    *out = value;
    return 1;
}

/* A plain decimal's value in [low, high]: 1 and *out set, else 0. */
static int plain_decimal(PyObject *text, long long low, long long high, long long *out)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text))
        return 0;
    return plain_decimal_chars((const char *)PyUnicode_1BYTE_DATA(text),
                               PyUnicode_GET_LENGTH(text), low, high, out);
}

typedef struct {
    PyObject *key;     /* borrowed; NULL: not used */
    PyObject *convert; /* borrowed; NULL: as it is */
    int ranged;
    long long low, high;
} column_t;

/* sql.py's _column_plan (a list of (key, low, high, convert)) as one column_t each, in a
 * new array (PyMem_Free it); NULL with an exception set on a malformed plan. */
static column_t *read_plan(PyObject *spec)
{
    Py_ssize_t width = PyList_GET_SIZE(spec);
    column_t *columns = PyMem_Calloc((size_t)(width ? width : 1), sizeof(column_t));
    if (columns == NULL)
        return (column_t *)PyErr_NoMemory();
    for (Py_ssize_t c = 0; c < width; c++) {
        PyObject *item = PyList_GET_ITEM(spec, c), *key, *low, *high, *convert;
        if (!PyArg_ParseTuple(item, "OOOO", &key, &low, &high, &convert))
            goto fail;
        columns[c].key = key == Py_None ? NULL : key;
        columns[c].convert = convert == Py_None ? NULL : convert;
        columns[c].ranged = low != Py_None && high != Py_None;
        if (columns[c].ranged) {
            columns[c].low = PyLong_AsLongLong(low);
            columns[c].high = PyLong_AsLongLong(high);
            if (PyErr_Occurred())
                goto fail;
        }
    }
    return columns;
fail:
    PyMem_Free(columns);
    return NULL;
}

static PyObject *typed_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyList_Check(args[0]) || !PyList_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "typed_rows(rows: list, columns: list)");
        return NULL;
    }
    PyObject *rows = args[0], *spec = args[1];
    Py_ssize_t width = PyList_GET_SIZE(spec), count = PyList_GET_SIZE(rows);
    column_t *columns = read_plan(spec);
    if (columns == NULL)
        return NULL;
    PyObject *out = NULL, *empty = NULL;
    empty = PyUnicode_FromStringAndSize("", 0);
    out = empty == NULL ? NULL : PyList_New(count);
    if (out == NULL)
        goto done;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyDict_Check(row)) {
            Py_CLEAR(out);
            out = Py_None;
            Py_INCREF(out);
            goto done;
        }
        PyObject *values = PyTuple_New(width + 1);
        if (values == NULL)
            goto fail;
        PyList_SET_ITEM(out, r, values);
        for (Py_ssize_t c = 0; c < width; c++) {
            const column_t *column = &columns[c];
            PyObject *value;
            if (column->key == NULL) {
                Py_INCREF(Py_None);
                PyTuple_SET_ITEM(values, c, Py_None);
                continue;
            }
            PyObject *text = PyDict_GetItemWithError(row, column->key);
            long long number;
            if (text == NULL) {
                if (PyErr_Occurred())
                    goto fail;
                text = empty; /* a key missing reads as "", as in _careful_rows */
            }
            if (column->convert == NULL) {
                Py_INCREF(text);
                value = text;
            }
            else if (column->ranged && plain_decimal(text, column->low, column->high, &number))
                value = PyLong_FromLongLong(number);
            else
                value = PyObject_CallOneArg(column->convert, text);
            if (value == NULL)
                goto fail;
            PyTuple_SET_ITEM(values, c, value);
        }
        PyObject *position = PyLong_FromSsize_t(r);
        if (position == NULL)
            goto fail;
        PyTuple_SET_ITEM(values, width, position);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    Py_XDECREF(empty);
    PyMem_Free(columns);
    return out;
}

/* ---- reply_rows: a generate call's Thrift reply, straight into typed_rows' tuples ------ */

/* The row keys worth matching: each used column's key once (first: the first of its
 * columns, chained by next_column), and "rowid". */
typedef struct {
    const char *key; /* UTF-8; NULL: matches no wire key */
    Py_ssize_t len;
    Py_ssize_t first;
    int rowid;
} target_t;

typedef struct {
    column_t *columns;
    Py_ssize_t width, *next_column;
    target_t *targets;
    Py_ssize_t ntargets;
    int fffd;            /* a key holds U+FFFD, so an invalid UTF-8 wire key may match it */
    Py_ssize_t *predict; /* target matched at each map position of the previous row */
    Py_ssize_t npredict;
} plan_t;

static int build_targets(plan_t *plan)
{
    Py_ssize_t width = plan->width;
    plan->targets = PyMem_Calloc((size_t)width + 1, sizeof(target_t));
    plan->next_column = PyMem_Calloc((size_t)(width ? width : 1), sizeof(Py_ssize_t));
    if (plan->targets == NULL || plan->next_column == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t *last = PyMem_Calloc((size_t)width + 1, sizeof(Py_ssize_t));
    if (last == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t c = 0; c < width; c++) {
        plan->next_column[c] = -1;
        if (plan->columns[c].key == NULL)
            continue;
        Py_ssize_t len;
        const char *key = PyUnicode_AsUTF8AndSize(plan->columns[c].key, &len);
        if (key == NULL) { /* a lone surrogate: no decoded wire key holds one */
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
                PyMem_Free(last);
                return -1;
            }
            PyErr_Clear();
        }
        Py_ssize_t t = 0;
        while (t < plan->ntargets && !(key != NULL && plan->targets[t].key != NULL &&
                                       plan->targets[t].len == len &&
                                       memcmp(plan->targets[t].key, key, (size_t)len) == 0))
            t++;
        if (t == plan->ntargets) {
            plan->targets[t] = (target_t){key, key ? len : 0, c, 0};
            plan->ntargets++;
        }
        else
            plan->next_column[last[t]] = c;
        last[t] = c;
        if (key != NULL && memmem(key, (size_t)len, "\xef\xbf\xbd", 3) != NULL)
            plan->fffd = 1;
    }
    PyMem_Free(last);
    Py_ssize_t t = 0;
    while (t < plan->ntargets && !(plan->targets[t].len == 5 && plan->targets[t].key != NULL &&
                                   memcmp(plan->targets[t].key, "rowid", 5) == 0))
        t++;
    if (t == plan->ntargets)
        plan->targets[plan->ntargets++] = (target_t){"rowid", 5, -1, 0};
    plan->targets[t].rowid = 1;
    return 0;
}

static Py_ssize_t find_target(const plan_t *plan, const char *key, Py_ssize_t len,
                              Py_ssize_t guess)
{
    const target_t *targets = plan->targets;
    if (guess >= 0 && targets[guess].len == len && memcmp(targets[guess].key, key, (size_t)len) == 0)
        return guess;
    for (Py_ssize_t t = 0; t < plan->ntargets; t++)
        if (targets[t].key != NULL && targets[t].len == len &&
            memcmp(targets[t].key, key, (size_t)len) == 0)
            return t;
    return -1;
}

/* The target a wire key (at position i of its map) names, -1 for none; -2 on error.
 * Predicts: an extension sends the same keys in the same order in every row. */
static Py_ssize_t match_key(plan_t *plan, const char *key, Py_ssize_t len, Py_ssize_t i)
{
    if (i >= plan->npredict) {
        Py_ssize_t n = plan->npredict ? plan->npredict * 2 : 64;
        while (n <= i)
            n *= 2;
        Py_ssize_t *predict = PyMem_Realloc(plan->predict, (size_t)n * sizeof(Py_ssize_t));
        if (predict == NULL) {
            PyErr_NoMemory();
            return -2;
        }
        for (Py_ssize_t j = plan->npredict; j < n; j++)
            predict[j] = -1;
        plan->predict = predict;
        plan->npredict = n;
    }
    Py_ssize_t t;
    if (plan->fffd) { /* compare as the key decodes, as the dict would */
        PyObject *text = PyUnicode_DecodeUTF8(key, len, "replace");
        const char *utf8 = text == NULL ? NULL : PyUnicode_AsUTF8AndSize(text, &len);
        if (utf8 == NULL) {
            Py_XDECREF(text);
            return -2;
        }
        t = find_target(plan, utf8, len, plan->predict[i]);
        Py_DECREF(text);
    }
    else
        t = find_target(plan, key, len, plan->predict[i]);
    plan->predict[i] = t;
    return t;
}

/* A column's value from its text's bytes, as typed_rows gives it from the decoded str. */
static PyObject *cell(const column_t *column, const char *p, Py_ssize_t n)
{
    long long number;
    if (column->convert == NULL)
        return PyUnicode_DecodeUTF8(p, n, "replace");
    if (column->ranged && plain_decimal_chars(p, n, column->low, column->high, &number))
        return PyLong_FromLongLong(number);
    PyObject *text = PyUnicode_DecodeUTF8(p, n, "replace");
    if (text == NULL)
        return NULL;
    PyObject *value = PyObject_CallOneArg(column->convert, text);
    Py_DECREF(text);
    return value;
}

/* One row (a map<string,string>) as typed_rows' tuple; *rowid its "rowid" text (new
 * reference) or NULL. A duplicate key: the last value wins, as in the dict. */
static PyObject *read_row(stream_t *in, plan_t *plan, Py_ssize_t position, PyObject **rowid)
{
    int ktype, vtype;
    Py_ssize_t count, len;
    *rowid = NULL;
    if (read_byte(in, &ktype) < 0 || read_byte(in, &vtype) < 0 ||
        read_length(in, &count, "map") < 0)
        return NULL;
    if (count > 0 && (ktype != TT_STRING || vtype != TT_STRING))
        return MALFORMED("row %zd is a map of types %d -> %d, not of strings", position, ktype,
                         vtype);
    PyObject *row = PyTuple_New(plan->width + 1);
    if (row == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *p;
        if (read_length(in, &len, "string") < 0 || (p = take(in, len)) == NULL)
            goto fail;
        Py_ssize_t t = match_key(plan, p, len, i);
        if (t == -2 || read_length(in, &len, "string") < 0)
            goto fail;
        if (t < 0) {
            if (skip_bytes(in, len) < 0)
                goto fail;
            continue;
        }
        if ((p = take(in, len)) == NULL)
            goto fail;
        for (Py_ssize_t c = plan->targets[t].first; c >= 0; c = plan->next_column[c]) {
            PyObject *value = cell(&plan->columns[c], p, len), *old;
            if (value == NULL)
                goto fail;
            old = PyTuple_GET_ITEM(row, c);
            PyTuple_SET_ITEM(row, c, value);
            Py_XDECREF(old);
        }
        if (plan->targets[t].rowid) {
            PyObject *text = PyUnicode_DecodeUTF8(p, len, "replace");
            if (text == NULL)
                goto fail;
            Py_XSETREF(*rowid, text);
        }
    }
    for (Py_ssize_t c = 0; c < plan->width; c++) {
        if (PyTuple_GET_ITEM(row, c) != NULL)
            continue;
        PyObject *value;
        if (plan->columns[c].key == NULL) {
            Py_INCREF(Py_None);
            value = Py_None;
        }
        else if ((value = cell(&plan->columns[c], "", 0)) == NULL) /* missing: "" */
            goto fail;
        PyTuple_SET_ITEM(row, c, value);
    }
    PyObject *index = PyLong_FromSsize_t(position);
    if (index == NULL)
        goto fail;
    PyTuple_SET_ITEM(row, plan->width, index);
    return row;
fail:
    Py_CLEAR(*rowid);
    Py_DECREF(row);
    return NULL;
}

/* ExtensionResponse.response: (rows, rowids); rowids None when no row has "rowid". */
static PyObject *read_rows(stream_t *in, plan_t *plan)
{
    int etype;
    Py_ssize_t count;
    if (read_byte(in, &etype) < 0 || read_length(in, &count, "list") < 0)
        return NULL;
    if (count > 0 && etype != TT_MAP)
        return MALFORMED("the rows are of type %d, not maps", etype);
    PyObject *rows = PyList_New(0), *rowids = NULL, *rowid;
    if (rows == NULL)
        return NULL;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = read_row(in, plan, r, &rowid);
        if (row == NULL)
            goto fail;
        int failed = PyList_Append(rows, row);
        Py_DECREF(row);
        if (rowid != NULL && rowids == NULL) {
            rowids = PyList_New(r); /* the rows before: None */
            for (Py_ssize_t j = 0; rowids != NULL && j < r; j++) {
                Py_INCREF(Py_None);
                PyList_SET_ITEM(rowids, j, Py_None);
            }
        }
        if (rowids != NULL)
            failed |= PyList_Append(rowids, rowid ? rowid : Py_None);
        Py_XDECREF(rowid);
        if (failed || (rowid != NULL && rowids == NULL))
            goto fail;
    }
    PyObject *out = PyTuple_Pack(2, rows, rowids ? rowids : Py_None);
    Py_DECREF(rows);
    Py_XDECREF(rowids);
    return out;
fail:
    Py_DECREF(rows);
    Py_XDECREF(rowids);
    return NULL;
}

static PyObject *read_plan_rows(stream_t *in, void *plan) { return read_rows(in, plan); }

static PyObject *reply_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyList_Check(args[0]) || !PyCallable_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "reply_rows(columns: list, read: callable)");
        return NULL;
    }
    stream_t in = {args[1], PyLong_FromLong(READ_CHUNK), NULL, 0, 0, 0};
    plan_t plan = {read_plan(args[0]), PyList_GET_SIZE(args[0]), NULL, NULL, 0, 0, NULL, 0};
    PyObject *out = NULL;
    if (in.chunk_size == NULL || plan.columns == NULL || build_targets(&plan) < 0)
        goto done;
    PyObject *result = read_result(&in, read_plan_rows, &plan);
    if (result == NULL || result == Py_None) {
        out = result;
        goto done;
    }
    /* (status, (rows, rowids) or None) -> (status, rows, rowids) */
    PyObject *status = PyTuple_GET_ITEM(result, 0), *pair = PyTuple_GET_ITEM(result, 1);
    out = pair == Py_None ? PyTuple_Pack(3, status, Py_None, Py_None)
                          : PyTuple_Pack(3, status, PyTuple_GET_ITEM(pair, 0),
                                         PyTuple_GET_ITEM(pair, 1));
    Py_DECREF(result);
done:
    Py_XDECREF(in.chunk_size);
    PyMem_Free(in.buf);
    PyMem_Free(plan.columns);
    PyMem_Free(plan.next_column);
    PyMem_Free(plan.targets);
    PyMem_Free(plan.predict);
    return out;
}

static PyObject *text_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 4 || !PyList_Check(args[0]) || !PyList_Check(args[1]) ||
        !PyUnicode_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "text_rows(rows: list, columns: list, nullvalue, as_text)");
        return NULL;
    }
    PyObject *rows = args[0], *columns = args[1], *null = args[2], *as_text = args[3];
    Py_ssize_t width = PyList_GET_SIZE(columns), count = PyList_GET_SIZE(rows);
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != width)
            Py_RETURN_NONE;
    }
    PyObject *out = PyList_New(count);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        PyObject *texts = PyDict_New();
        if (texts == NULL)
            goto fail;
        PyList_SET_ITEM(out, r, texts);
        for (Py_ssize_t c = 0; c < width; c++) {
            PyObject *value = PyTuple_GET_ITEM(row, c), *text;
            if (PyUnicode_CheckExact(value)) {
                Py_INCREF(value);
                text = value;
            }
            else if (value == Py_None) {
                Py_INCREF(null);
                text = null;
            }
            else if (PyLong_CheckExact(value))
                text = PyObject_Str(value);
            else
                text = PyObject_CallOneArg(as_text, value);
            if (text == NULL)
                goto fail;
            int failed = PyDict_SetItem(texts, PyList_GET_ITEM(columns, c), text);
            Py_DECREF(text);
            if (failed)
                goto fail;
        }
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"typed_rows", (PyCFunction)(void (*)(void))typed_rows, METH_FASTCALL,
     "typed_rows(rows, columns): each extension row as a tuple of column values, or None."},
    {"text_rows", (PyCFunction)(void (*)(void))text_rows, METH_FASTCALL,
     "text_rows(rows, columns, nullvalue, as_text): each result row as {column: text}."},
    {"reply_rows", (PyCFunction)(void (*)(void))reply_rows, METH_FASTCALL,
     "reply_rows(columns, read): a generate call's reply as (status, rows, rowids), or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_sqlfast", "Compiled fast paths of core/sql.py.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sqlfast(void) { return PyModule_Create(&module_def); }
