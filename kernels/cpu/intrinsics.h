// <immintrin.h> for the per-ISA kernel files (*_avx2.cpp, *_avx512.cpp, *_avx512vnni.cpp).
//
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*() (GCC PR 105593);
// the warning is attributed to the header's lines, so silencing it around the include is enough.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
