#ifndef CSQLITE_SHIM_H
#define CSQLITE_SHIM_H

#include <sqlite3.h>

/// SQLITE_TRANSIENT is a macro casting -1 to a function pointer, which Swift
/// cannot import. Bound text and blobs use it so that SQLite copies the bytes
/// before the Swift buffer goes away.
static inline sqlite3_destructor_type csqlite_transient(void) {
    return SQLITE_TRANSIENT;
}

/// sqlite3_db_config() is variadic, which Swift cannot call. This wrapper sets
/// one boolean option (SQLITE_DBCONFIG_DQS_DML, SQLITE_DBCONFIG_DEFENSIVE, ...)
/// and returns SQLite's result code.
static inline int csqlite_db_config_bool(sqlite3 *db, int option, int enabled) {
    int current = 0;
    return sqlite3_db_config(db, option, enabled, &current);
}

/// Extended result codes defined as expressions ((SQLITE_CONSTRAINT | (6<<8)))
/// that Swift does not import as constants.
static const int CSQLITE_CONSTRAINT_CHECK = SQLITE_CONSTRAINT_CHECK;
static const int CSQLITE_CONSTRAINT_FOREIGNKEY = SQLITE_CONSTRAINT_FOREIGNKEY;
static const int CSQLITE_CONSTRAINT_NOTNULL = SQLITE_CONSTRAINT_NOTNULL;
static const int CSQLITE_CONSTRAINT_PRIMARYKEY = SQLITE_CONSTRAINT_PRIMARYKEY;
static const int CSQLITE_CONSTRAINT_UNIQUE = SQLITE_CONSTRAINT_UNIQUE;

#endif /* CSQLITE_SHIM_H */
