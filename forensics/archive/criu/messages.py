"""The CRIU image messages csi reads, as field tables.

Field numbers follow CRIU's ``images/*.proto`` (MIT licensed); only the
fields csi uses are listed, everything else is skipped by the decoder. The
magic numbers are CRIU's ``criu/include/magic.h``.
"""

from __future__ import annotations

from forensics.archive.criu.wire import Field, Message

# ---------------------------------------------------------------- magics

IMG_COMMON_MAGIC = 0x54564319
IMG_SERVICE_MAGIC = 0x55105940

MAGICS: dict[str, int] = {
    "inventory": 0x58313116,
    "pstree": 0x50273030,
    "fdinfo": 0x56213732,
    "pagemap": 0x56084025,
    "core": 0x55053847,
    "ids": 0x54432030,
    "pipes": 0x56513555,
    "unixsk": 0x54373943,
    "inetsk": 0x56443851,
    "creds": 0x54023547,
    "reg-files": 0x50363636,
    "fs": 0x51403912,
    "mm": 0x57492820,
    "remap-fpath": 0x59133954,
    "ghost-file": 0x52583605,
    "tcp-stream": 0x51465506,
    "mountpoints": 0x55563928,
    "files": 0x56303138,
    "stats": 0x57093306,
}


def _f(name: str, kind: str = "uint", *, rep: bool = False, msg: Message | None = None) -> Field:
    return Field(name, "msg" if msg is not None else kind, rep, msg)


# ---------------------------------------------------------------- messages

INVENTORY = Message(
    "inventory_entry",
    {1: _f("img_version"), 2: _f("fdinfo_per_id", "bool"), 4: _f("ns_per_id", "bool"),
     8: _f("dump_uptime"), 13: _f("dump_criu_run_id", "string")},
)

PSTREE = Message(
    "pstree_entry",
    {1: _f("pid"), 2: _f("ppid"), 3: _f("pgid"), 4: _f("sid"), 5: _f("threads", rep=True)},
)

CREDS = Message(
    "creds_entry",
    {1: _f("uid"), 2: _f("gid"), 3: _f("euid"), 4: _f("egid"), 5: _f("suid"), 6: _f("sgid"),
     7: _f("fsuid"), 8: _f("fsgid"), 11: _f("cap_eff", rep=True), 14: _f("groups", rep=True),
     18: _f("no_new_privs")},
)

TASK_KOBJ_IDS = Message(
    "task_kobj_ids_entry",
    {1: _f("vm_id"), 2: _f("files_id"), 3: _f("fs_id"), 4: _f("sighand_id"),
     5: _f("pid_ns_id"), 6: _f("net_ns_id"), 9: _f("mnt_ns_id")},
)

TASK_CORE = Message(
    "task_core_entry",
    {1: _f("task_state"), 2: _f("exit_code"), 6: _f("comm", "string"),
     13: _f("loginuid"), 14: _f("oom_score_adj", "int32")},
)

THREAD_CORE = Message(
    "thread_core_entry",
    {10: _f("creds", msg=CREDS), 11: _f("seccomp_mode"), 13: _f("comm", "string")},
)

CORE = Message(
    "core_entry",
    {1: _f("mtype"), 3: _f("tc", msg=TASK_CORE), 4: _f("ids", msg=TASK_KOBJ_IDS),
     5: _f("thread_core", msg=THREAD_CORE)},
)

VMA = Message(
    "vma_entry",
    {1: _f("start"), 2: _f("end"), 3: _f("pgoff"), 4: _f("shmid"), 5: _f("prot"),
     6: _f("flags"), 7: _f("status")},
)

MM = Message(
    "mm_entry",
    {1: _f("mm_start_code"), 2: _f("mm_end_code"), 5: _f("mm_start_stack"),
     8: _f("mm_arg_start"), 9: _f("mm_arg_end"), 10: _f("mm_env_start"),
     11: _f("mm_env_end"), 12: _f("exe_file_id"), 14: _f("vmas", rep=True, msg=VMA)},
)

PAGEMAP_HEAD = Message("pagemap_head", {1: _f("pages_id")})

PAGEMAP_ENTRY = Message(
    "pagemap_entry",
    {1: _f("vaddr"), 2: _f("compat_nr_pages"), 3: _f("in_parent", "bool"), 4: _f("flags"),
     5: _f("nr_pages")},
)

FS = Message("fs_entry", {1: _f("cwd_id"), 2: _f("root_id"), 3: _f("umask")})

FDINFO = Message("fdinfo_entry", {1: _f("id"), 2: _f("flags"), 3: _f("type"), 4: _f("fd")})

REG_FILE = Message(
    "reg_file_entry",
    {1: _f("id"), 2: _f("flags"), 3: _f("pos"), 6: _f("name", "string"), 8: _f("size"),
     10: _f("mode")},
)

SK_OPTS = Message("sk_opts_entry", {1: _f("so_sndbuf"), 2: _f("so_rcvbuf")})

INET_SK = Message(
    "inet_sk_entry",
    {1: _f("id"), 2: _f("ino"), 3: _f("family"), 4: _f("type"), 5: _f("proto"),
     6: _f("state"), 7: _f("src_port"), 8: _f("dst_port"), 10: _f("backlog"),
     11: _f("src_addr", rep=True), 12: _f("dst_addr", rep=True), 14: _f("opts", msg=SK_OPTS),
     15: _f("v6only", "bool")},
)

UNIX_SK = Message(
    "unix_sk_entry",
    {1: _f("id"), 2: _f("ino"), 3: _f("type"), 4: _f("state"), 7: _f("backlog"),
     8: _f("peer"), 10: _f("opts", msg=SK_OPTS), 11: _f("name", "bytes"),
     14: _f("name_dir", "string"), 15: _f("deleted", "bool")},
)

PIPE = Message("pipe_entry", {1: _f("id"), 2: _f("pipe_id"), 3: _f("flags")})

FILE = Message(
    "file_entry",
    {1: _f("type"), 2: _f("id"), 3: _f("reg", msg=REG_FILE), 4: _f("isk", msg=INET_SK),
     16: _f("usk", msg=UNIX_SK), 18: _f("pipe", msg=PIPE)},
)

REMAP_FPATH = Message(
    "remap_file_path_entry", {1: _f("orig_id"), 2: _f("remap_id"), 3: _f("remap_type")}
)

TCP_STREAM = Message(
    "tcp_stream_entry",
    {1: _f("inq_len"), 2: _f("inq_seq"), 3: _f("outq_len"), 4: _f("outq_seq"),
     12: _f("unsq_len")},
)

DUMP_STATS = Message(
    "dump_stats_entry",
    {1: _f("freezing_time"), 2: _f("frozen_time"), 3: _f("memdump_time"),
     4: _f("memwrite_time"), 5: _f("pages_scanned"), 6: _f("pages_skipped_parent"),
     7: _f("pages_written"), 8: _f("irmap_resolve"), 9: _f("pages_lazy"),
     10: _f("page_pipes"), 11: _f("page_pipe_bufs"), 12: _f("shpages_scanned"),
     13: _f("shpages_skipped_parent"), 14: _f("shpages_written")},
)

STATS = Message("stats_entry", {1: _f("dump", msg=DUMP_STATS)})

# ---------------------------------------------------------------- enums

FD_TYPES = {
    0: "UND", 1: "REG", 2: "PIPE", 3: "FIFO", 4: "INETSK", 5: "UNIXSK", 6: "EVENTFD",
    7: "EVENTPOLL", 8: "INOTIFY", 9: "SIGNALFD", 10: "PACKETSK", 11: "TTY", 12: "FANOTIFY",
    13: "NETLINKSK", 14: "NS", 15: "TUNF", 16: "EXT", 17: "TIMERFD", 18: "MEMFD",
    19: "BPFMAP", 20: "PIDFD",
}

TASK_STATES = {1: "Alive", 2: "Dead", 3: "Stopped", 4: "Helper", 5: "Thread", 6: "Zombie"}

REMAP_GHOST = 1

# pagemap_entry.flags
PE_PARENT = 1 << 0
PE_LAZY = 1 << 1
PE_PRESENT = 1 << 2
