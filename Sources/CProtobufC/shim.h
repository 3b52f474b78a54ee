#ifndef SESSIONS_CPROTOBUFC_SHIM_H
#define SESSIONS_CPROTOBUFC_SHIM_H
#include <protobuf-c/protobuf-c.h>
#endif
