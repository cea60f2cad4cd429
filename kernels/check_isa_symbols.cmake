# Build-time guard (run by kernels/CMakeLists.txt after each build of the ISA objects): an object
# compiled with AVX2/AVX-512 flags must define no weak code symbol ('W' in nm). Such symbols are
# inline functions or template instantiations the linker may merge with the baseline copies used
# elsewhere, which would put AVX-512 instructions into code that runs on any CPU. (Weak data such
# as the DW.ref.__gxx_personality_v0 pointer of exception tables, 'V', holds no instructions.)
# Usage: cmake -DNM=<nm> -DOBJECTS="<obj>|<obj>" -P check_isa_symbols.cmake
string(REPLACE "|" ";" objects "${OBJECTS}")
if(NOT objects)
  message(FATAL_ERROR "check_isa_symbols: no objects given")
endif()
foreach(obj IN LISTS objects)
  execute_process(COMMAND ${NM} --defined-only -C ${obj} OUTPUT_VARIABLE symbols
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "check_isa_symbols: ${NM} failed on ${obj}")
  endif()
  string(REGEX MATCHALL "[^\n]* W [^\n]*" leaked "${symbols}")
  if(leaked)
    string(REPLACE ";" "\n  " leaked "${leaked}")
    message(FATAL_ERROR "check_isa_symbols: ${obj} defines weak code symbols, which could leak "
                        "ISA-specific code into baseline callers (see kernels/cpu/kernel_tables.h):"
                        "\n  ${leaked}")
  endif()
endforeach()
