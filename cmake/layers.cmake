# The layer rule (docs/architecture.md, "What may depend on what").
#
# Every directory under gateway/ is a module; a module may include the
# headers of the modules listed for it below and nothing else of the
# gateway. gateway/lib/ is the ground floor: no I/O, no event loop, and it
# includes nothing above it. A file may also be given its own, narrower
# list (GW_LAYER_FILE_<path with / and . as _>).
#
# Used two ways: included by the top-level CMakeLists.txt (a violation
# stops the configure step, so the build cannot be made), and run as a
# script by ctest (tests/CMakeLists.txt, "layers") against the tree, and
# against tests/layers/ fixtures that must fail.
#
#   cmake -DGW_LAYER_ROOT=<dir containing gateway/> -P cmake/layers.cmake

set(GW_LAYER_lib     lib)
set(GW_LAYER_conf    lib conf)
set(GW_LAYER_policy  lib conf policy)
set(GW_LAYER_revoc   lib conf revoc)
set(GW_LAYER_quota   lib conf quota)
set(GW_LAYER_token   lib conf policy quota token)
set(GW_LAYER_journal lib conf token journal)
set(GW_LAYER_evidence lib conf policy quota token journal stages evidence)
set(GW_LAYER_stages  lib conf policy quota token journal revoc stages)
set(GW_LAYER_core    lib conf policy quota token journal revoc stages core)
set(GW_LAYER_datapass lib conf policy quota token journal stages core datapass)
set(GW_LAYER_admin   lib conf policy quota token journal revoc stages core datapass evidence admin)

# Per-file rules. The connection carries bytes (transport, timers, the HTTP
# state machine): it knows the request and outcome modules of core/
# (core/request.h, core/outcome.h), never a stage, the quota store, the
# token module or the journal.
set(GW_LAYER_FILE_core_conn_c lib conf policy core)
# The HTTP/2 session (core/h2.c) is the connection's other half: the same
# bounds, plus the security-events stream (journal/events.h) for the
# "h2.abuse" events; never a stage, the quota store or the token module.
set(GW_LAYER_FILE_core_h2_c lib conf journal core)

function(gw_check_layers root)
  file(GLOB_RECURSE files RELATIVE ${root}/gateway ${root}/gateway/*.c ${root}/gateway/*.h)
  set(bad "")
  foreach(f ${files})
    get_filename_component(dir ${f} DIRECTORY)
    if(dir STREQUAL "")
      continue() # gateway/main.c: the top, may include anything
    endif()
    string(REGEX REPLACE "/.*" "" mod "${dir}")
    string(REGEX REPLACE "[/.]" "_" fkey "${f}")
    set(who "${mod}")
    if(DEFINED GW_LAYER_FILE_${fkey})
      set(allowed ${GW_LAYER_FILE_${fkey}})
      set(who "${f}")
    elseif(DEFINED GW_LAYER_${mod})
      set(allowed ${GW_LAYER_${mod}})
    else()
      list(APPEND bad "gateway/${f}: module '${mod}' has no entry in cmake/layers.cmake")
      continue()
    endif()
    file(STRINGS ${root}/gateway/${f} incs REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line ${incs})
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\".*" "\\1" inc "${line}")
      if(NOT inc MATCHES "/")
        continue() # a sibling header of the same directory
      endif()
      string(REGEX REPLACE "/.*" "" to "${inc}")
      list(FIND allowed ${to} at)
      if(at LESS 0)
        list(APPEND bad "gateway/${f}: includes \"${inc}\": '${who}' may include only: ${allowed}")
      endif()
    endforeach()
  endforeach()
  if(bad)
    list(JOIN bad "\n  " msg)
    message(FATAL_ERROR "layer rule broken (cmake/layers.cmake):\n  ${msg}")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE)
  if(NOT GW_LAYER_ROOT)
    message(FATAL_ERROR "usage: cmake -DGW_LAYER_ROOT=<dir> -P cmake/layers.cmake")
  endif()
  gw_check_layers(${GW_LAYER_ROOT})
  message(STATUS "layer rule: ${GW_LAYER_ROOT}/gateway OK")
endif()
