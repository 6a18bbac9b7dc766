# Project-wide compiler flags: warnings (fatal with VMLAB_WERROR) and sanitizers.
set(VMLAB_WARNINGS -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
    -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual)
if(VMLAB_WERROR)
  list(APPEND VMLAB_WARNINGS -Werror)
endif()

if(VMLAB_SANITIZE)
  # vptr is off: Debian's libcpprest is built without exported type info for its
  # stream buffer templates, so UBSan's dynamic-type check misfires inside
  # cpprest's own headers. Every other UBSan check stays on and fatal.
  add_compile_options(-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=all)
endif()

if(VMLAB_FUZZ)
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer
                      # clang flags libstdc++ 12's own use of get_temporary_buffer in C++23
                      -Wno-deprecated-declarations)
  add_link_options(-fsanitize=address,undefined)
endif()

# Applies the project's warnings to one of our own targets (not to third-party code).
function(vmlab_target_warnings target)
  target_compile_options(${target} PRIVATE ${VMLAB_WARNINGS})
endfunction()
