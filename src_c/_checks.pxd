# Argument checks shared by the kernel modules.
#
# Every function here runs with the GIL, before a kernel releases it, and
# raises TypeError or ValueError with a message that names the function, the
# argument, what was expected and what arrived. They use the NumPy C API so
# that the checks cost well under a microsecond per array.

cimport numpy as cnp
from cpython.number cimport PyNumber_Index

cdef extern from *:
    """
    #define CSMILE_CARRAY_FLAGS (NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED)
    """
    int CSMILE_CARRAY_FLAGS


cdef inline cnp.ndarray check_float_array(
    object array, str name, int ndim, str shape_text, str func_name
):
    """Return array as an aligned, native, C-contiguous float32/float64 ndarray.

    Array-likes such as lists are converted. Non-contiguous, unaligned or
    byte-swapped arrays are copied, so the caller's array is never written.
    """
    cdef cnp.ndarray result
    cdef int type_num

    if array is None:
        raise TypeError(
            f"{func_name}: {name} must be an ndarray of shape {shape_text}; got None."
        )
    if cnp.PyArray_Check(array):
        result = <cnp.ndarray>array
    else:
        result = <cnp.ndarray>cnp.PyArray_FROMANY(array, cnp.NPY_NOTYPE, 0, 0, 0)

    type_num = cnp.PyArray_TYPE(result)
    if type_num != cnp.NPY_FLOAT32 and type_num != cnp.NPY_FLOAT64:
        raise TypeError(
            f"{func_name}: {name} has dtype {result.dtype}; expected float32 or "
            f"float64. Convert it with {name}.astype(np.float32)."
        )
    if cnp.PyArray_NDIM(result) != ndim:
        raise ValueError(
            f"{func_name}: {name} must have {ndim} dimensions {shape_text}; "
            f"got shape {(<object>result).shape}."
        )
    if not (
        cnp.PyArray_IS_C_CONTIGUOUS(result)
        and cnp.PyArray_ISALIGNED(result)
        and cnp.PyArray_ISNOTSWAPPED(result)
    ):
        result = <cnp.ndarray>cnp.PyArray_FROMANY(
            result, type_num, ndim, ndim, CSMILE_CARRAY_FLAGS
        )
    return result


cdef inline int check_same_dtype(
    cnp.ndarray first, str first_name, cnp.ndarray other, str other_name,
    str func_name
) except -1:
    if cnp.PyArray_TYPE(other) != cnp.PyArray_TYPE(first):
        raise TypeError(
            f"{func_name}: {other_name} has dtype {other.dtype} but {first_name} "
            f"has dtype {first.dtype}; all arrays must share one dtype. Convert "
            f"it with {other_name}.astype({first_name}.dtype)."
        )
    return 0


cdef inline object check_positive_int(object value, str name, str func_name):
    """Return value as a Python int >= 1."""
    try:
        value = PyNumber_Index(value)
    except TypeError:
        raise TypeError(
            f"{func_name}: {name} must be an integer >= 1; got {value!r}."
        ) from None
    if value < 1:
        raise ValueError(f"{func_name}: {name} must be >= 1; got {value}.")
    return value


# More threads than this never help a kernel call on a batch of faces.
cdef enum:
    MAX_THREADS = 256


cdef inline int thread_count(
    object n_threads, Py_ssize_t n_work_units, str func_name
) except -1:
    """Check n_threads and return it capped at the number of work units and at MAX_THREADS.

    The caps keep a huge request from asking OpenMP for more threads than
    there are independent pieces of work, or for so many that the operating
    system refuses them, which makes the OpenMP runtime end the process.
    """
    cdef object requested

    if type(n_threads) is int and n_threads == 1:
        return 1
    if isinstance(n_threads, bool):
        raise TypeError(
            f"{func_name}: n_threads must be an integer >= 1; got {n_threads!r}."
        )
    try:
        requested = PyNumber_Index(n_threads)
    except TypeError:
        raise TypeError(
            f"{func_name}: n_threads must be an integer >= 1; got {n_threads!r}."
        ) from None
    if requested < 1:
        raise ValueError(f"{func_name}: n_threads must be >= 1; got {requested}.")
    if n_work_units < 1:
        return 1
    return <int>min(requested, n_work_units, MAX_THREADS)
