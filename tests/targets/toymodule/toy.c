/* A tiny Valkey module for the adversarial tests: dotted commands with planted bugs (unless built with -DCLEAN).
 * Written against the module ABI directly (the context's first word is the API lookup function), so the test
 * needs no module header:
 *   toy.range <start> <end>    start < 0 dereferences NULL (a crash, SIGSEGV);
 *   toy.setrange <offset> <n>  offset == -3 fails an assertion (Valkey prints an assertion report);
 *   toy.spin <n>               n > 1000000 spins forever (a hang).
 */
#include <stddef.h>

typedef struct Ctx Ctx;
typedef struct Str Str;
typedef int (*CmdFunc)(Ctx *ctx, Str **argv, int argc);

static int (*GetApi)(const char *, void *);
static int (*SetModuleAttribs)(Ctx *, const char *, int, int);
static int (*CreateCommand)(Ctx *, const char *, CmdFunc, const char *, int, int, int);
static int (*ReplyWithLongLong)(Ctx *, long long);
static int (*ReplyWithError)(Ctx *, const char *);
static int (*StringToLongLong)(const Str *, long long *);
static void (*Assert)(const char *, const char *, int);

#define API(var, name) GetApi("RedisModule_" name, (void **)&var)

static int two_numbers(Ctx *ctx, Str **argv, int argc, long long *a, long long *b) {
    if (argc != 3) { ReplyWithError(ctx, "ERR wrong number of arguments"); return 0; }
    if (StringToLongLong(argv[1], a) || StringToLongLong(argv[2], b)) {
        ReplyWithError(ctx, "ERR value is not an integer");
        return 0;
    }
    return 1;
}

int range_cmd(Ctx *ctx, Str **argv, int argc) {
    long long start, end;
    if (!two_numbers(ctx, argv, argc, &start, &end)) return 0;
#ifndef CLEAN
    if (start < 0) { volatile long long *nothing = NULL; return ReplyWithLongLong(ctx, *nothing); }
#endif
    return ReplyWithLongLong(ctx, end > start ? end - start : 0);
}

int setrange_cmd(Ctx *ctx, Str **argv, int argc) {
    long long offset, n;
    if (!two_numbers(ctx, argv, argc, &offset, &n)) return 0;
#ifndef CLEAN
    if (offset == -3) Assert("offset >= 0", "toy.c", 54);
#endif
    return ReplyWithLongLong(ctx, offset < 0 ? 0 : offset + n);
}

int spin_cmd(Ctx *ctx, Str **argv, int argc) {
    long long n, unused;
    if (argc == 2) { argv[2] = argv[1]; argc = 3; }
    if (!two_numbers(ctx, argv, argc, &n, &unused)) return 0;
#ifndef CLEAN
    if (n > 1000000) for (volatile long long i = 0;; i++) {}
#endif
    return ReplyWithLongLong(ctx, n);
}

int RedisModule_OnLoad(Ctx *ctx, Str **argv, int argc) {
    (void)argv; (void)argc;
    GetApi = (int (*)(const char *, void *))((void **)ctx)[0];
    API(SetModuleAttribs, "SetModuleAttribs");
    API(CreateCommand, "CreateCommand");
    API(ReplyWithLongLong, "ReplyWithLongLong");
    API(ReplyWithError, "ReplyWithError");
    API(StringToLongLong, "StringToLongLong");
    API(Assert, "_Assert");
    SetModuleAttribs(ctx, "toy", 1, 1);
    if (CreateCommand(ctx, "toy.range", range_cmd, "readonly", 0, 0, 0)) return 1;
    if (CreateCommand(ctx, "toy.setrange", setrange_cmd, "write", 0, 0, 0)) return 1;
    if (CreateCommand(ctx, "toy.spin", spin_cmd, "readonly", 0, 0, 0)) return 1;
    return 0;
}
