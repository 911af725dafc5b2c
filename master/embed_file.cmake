# Turns a file into a C header holding its bytes as a NUL-terminated array, at build time:
#   cmake -DIN=<file> -DOUT=<header> -DNAME=<symbol> -P embed_file.cmake
# The header defines `static const char NAME[]` (length: sizeof(NAME) - 1). The file must be
# ASCII or UTF-8 without NUL bytes.
file(READ "${IN}" hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "'\\\\x\\1'," bytes "${hex}")
string(REGEX REPLACE "(('[^']*',){16})" "\\1\n" bytes "${bytes}")
get_filename_component(src "${IN}" NAME)
file(WRITE "${OUT}"
     "/* Generated from ${src} by embed_file.cmake at build time; edit ${src} instead. */\n"
     "static const char ${NAME}[] = {\n${bytes}0};\n")
