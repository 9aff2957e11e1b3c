#!/usr/bin/env python3
"""Every link and page reference in the documentation resolves inside the tree.

Checks README.md, docs/*.md and docs/man/*:
  - a relative Markdown link [text](path) or [ref]: path names a file or
    directory of the tree (relative to the Markdown file), and its #anchor,
    if any, a heading of that Markdown file;
  - a repository path written in the text (`docs/PROTOCOL.md`,
    tools/machnet-run, ../anything) exists in the tree, or is a file the
    build makes (named in a Makefile.am or local.am fragment);
  - a page reference NAME(N) names a page of docs/man/, or a system page on
    the allow-list below;
  - every page of docs/man/ is installed (listed in dist_man_MANS).

  test_doc_links.py [--root DIR]   check the tree (default $MACHNET_SRCDIR,
                                   else the tree this file is in)
Then, without --root, it checks itself: a small tree with one mistake of
each kind must give exactly those errors, and the same tree without them
none. Exit status 0 when all is well, 1 otherwise.
"""
import glob
import os
import re
import shutil
import sys
import tempfile

# Pages outside this project that the documentation may cite.
SYSTEM_PAGES = {
    # Linux and C library (manpages, manpages-dev)
    "bind(2)", "close(2)", "connect(2)", "dlopen(3)", "dup(2)", "epoll(7)",
    "epoll_wait(2)", "errno(3)", "execve(2)", "fork(2)", "poll(2)", "ppoll(2)",
    "recvfrom(2)", "recvmsg(2)", "select(2)", "sendmsg(2)", "sendto(2)",
    "setsockopt(2)", "shutdown(2)", "socket(2)", "udp(7)", "ld.so(8)",
    "listen(2)", "accept(2)", "accept4(2)", "getsockopt(2)", "ioctl(2)", "send(2)", "recv(2)",
    "sendfile(2)", "tcp(7)", "socket(7)", "signal(7)", "_exit(2)", "exit(3)", "kill(2)",
    "raise(3)", "pthread_atfork(3)", "sigaction(2)", "signal(2)", "sysv_signal(3)",
    "bsd_signal(3)", "siginterrupt(3)", "recvmmsg(2)", "sendmmsg(2)",
    # programs of other Debian packages
    "dpdk-testpmd(1)", "ethtool(8)", "flock(1)", "ip(8)", "ip-netns(8)", "jq(1)",
    "memcached(1)", "sh(1)", "sockperf(1)", "systemd.unit(5)", "systemd-sysusers(8)", "systemd-tmpfiles(8)",
}

# First components of the paths in the text that are checked as repository
# paths ("src/engine/", "tools/machnet-run"). Absolute paths (/etc/...) are
# the installed system's and are not checked.
TOP_DIRS = ("src", "include", "preload", "tools", "tests", "docs", "etc", "m4",
            "debian", "rpm")

PAGE_REF = re.compile(r"(?<![\w.+-])([A-Za-z_][\w.+-]*)\(([1-9][a-z]*)\)")
REPO_PATH = re.compile(
    r"(?<![\w./$<>{}-])((?:\.\./)+[\w.*/-]+|(?:%s)/[\w.*/+-]*)" % "|".join(TOP_DIRS))
MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
MD_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# A Markdown file named without a directory ("see NOTES.md").
BARE_MD = re.compile(r"(?<![\w./-])([\w-]+\.md)(?![\w-])")


def doc_files(root):
    files = []
    if os.path.isfile(os.path.join(root, "README.md")):
        files.append("README.md")
    files += sorted(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "*.md")))
    files += sorted(
        os.path.relpath(p, root) for p in glob.glob(os.path.join(root, "docs", "man", "*"))
        if re.search(r"\.[1-9][a-z]*$", p))
    return files


def man_pages(root):
    pages = set()
    for p in glob.glob(os.path.join(root, "docs", "man", "*")):
        m = re.match(r"^(.+)\.([1-9][a-z]*)$", os.path.basename(p))
        if m:
            pages.add("%s(%s)" % (m.group(1), m.group(2)))
    return pages


def makefile_text(root):
    """The top Makefile.am and every local.am fragment (not those of a build
    or dist directory that may sit inside the tree)."""
    paths = [os.path.join(root, "Makefile.am")]
    for top in TOP_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames.sort()
            if "local.am" in filenames:
                paths.append(os.path.join(dirpath, "local.am"))
    text = []
    for p in paths:
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as fh:
                text.append(fh.read())
    return "\n".join(text)


# ---- roff to text (the subset the pages use) ---------------------------------

ESCAPES = [
    (re.compile(r"\\f(\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\\*(\[[^\]]*\]|\(..|.)"), ""),  # strings
    (re.compile(r"\\s[+-]?\d"), ""),  # size changes
    (re.compile(r"\\\((..)"), " "),  # special characters: \(em, \(dq, ...
    (re.compile(r"\\\[[^\]]*\]"), " "),
    (re.compile(r"\\[&%c]"), ""),
    (re.compile(r"\\-"), "-"),
    (re.compile(r"\\e"), "\\\\"),
    (re.compile(r"\\ "), " "),
]
ALTERNATING = {"BR", "RB", "BI", "IB", "IR", "RI"}
SINGLE_FONT = {"B", "I", "SM", "SB"}
TEXT_MACROS = {"SH", "SS", "TP", "IP", "TQ"}


def roff_args(s):
    args, cur, quoted, i = [], "", False, 0
    while i < len(s):
        c = s[i]
        if quoted:
            if c == '"':
                if i + 1 < len(s) and s[i + 1] == '"':
                    cur += '"'
                    i += 1
                else:
                    quoted = False
            else:
                cur += c
        elif c == '"':
            quoted = True
        elif c in " \t":
            if cur:
                args.append(cur)
                cur = ""
        else:
            cur += c
        i += 1
    if cur or quoted:
        args.append(cur)
    return args


def roff_to_text(src):
    """Returns (line number, text) pairs, one per input line."""
    out = []
    for n, line in enumerate(src.splitlines(), 1):
        if line.startswith(('.\\"', "'\\\"")) or line in (".", "'"):
            continue
        line = re.sub(r'\\".*$', "", line)
        if line[:1] in (".", "'"):
            m = re.match(r"^[.']\s*(\S+)\s*(.*)$", line)
            if not m:
                continue
            macro, rest = m.group(1), m.group(2)
            if macro in ALTERNATING:
                text = "".join(roff_args(rest))
            elif macro in SINGLE_FONT or macro in TEXT_MACROS:
                text = " ".join(roff_args(rest))
            else:
                continue
        else:
            text = line
        for pat, rep in ESCAPES:
            text = pat.sub(rep, text)
        out.append((n, text))
    return out


# ---- Markdown ------------------------------------------------------------------


def slug(heading):
    """GitHub's anchor for a heading."""
    s = re.sub(r"[`*_~]|<[^>]*>", "", heading).strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def md_anchors(path):
    anchors, seen = set(), {}
    with open(path, encoding="utf-8") as f:
        in_fence = False
        for line in f:
            if re.match(r"^\s*(```|~~~)", line):
                in_fence = not in_fence
                continue
            m = None if in_fence else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if m:
                s = slug(m.group(1))
                k = seen.get(s, 0)
                seen[s] = k + 1
                anchors.add(s if k == 0 else "%s-%d" % (s, k))
    return anchors


def md_lines(src):
    """Returns (line number, text, in a code block) triples."""
    out, fence, prev_blank = [], False, True
    for n, line in enumerate(src.splitlines(), 1):
        if re.match(r"^\s*(```|~~~)", line):
            fence = not fence
            out.append((n, "", True))
            continue
        indented = bool(re.match(r"^(    |\t)", line)) and (prev_blank or (out and out[-1][2]))
        out.append((n, line, fence or indented))
        prev_blank = line.strip() == ""
    return out


# ---- the check -------------------------------------------------------------------


def path_exists(root, rel):
    full = os.path.normpath(os.path.join(root, rel))
    if os.path.commonpath([os.path.abspath(root), os.path.abspath(full)]) != os.path.abspath(root):
        return False
    if any(c in rel for c in "*?["):
        return bool(glob.glob(full))
    return os.path.exists(full)


def check(root):
    errors = []
    pages = man_pages(root)
    am = makefile_text(root)

    def err(where, n, msg):
        errors.append("%s:%d: %s" % (where, n, msg))

    def check_repo_path(where, n, token):
        token = token.rstrip(".,:;")
        if not token or token.endswith("/.") or token in ("..", "../"):
            return
        if token.startswith("../"):
            err(where, n, "'%s' points outside the repository" % token)
            return
        if path_exists(root, token):
            return
        bare = token.rstrip("/")
        if re.search(r"(?<![\w/.-])%s(?![\w/.-])" % re.escape(bare), am):
            return  # a file the build makes
        err(where, n, "'%s' does not exist in the tree" % token)

    def check_page(where, n, name, sect):
        ref = "%s(%s)" % (name, sect)
        if ref in pages or ref in SYSTEM_PAGES:
            return
        err(where, n, "page %s is neither in docs/man/ nor an allowed system page" % ref)

    for rel in doc_files(root):
        full = os.path.join(root, rel)
        with open(full, encoding="utf-8") as f:
            src = f.read()
        is_md = rel.endswith(".md")
        lines = md_lines(src) if is_md else [(n, t, False) for n, t in roff_to_text(src)]
        for n, text, code_block in lines:
            links = []
            if is_md:
                links = [m.group(1) for m in MD_LINK.finditer(text)]
                links += [m.group(1) for m in MD_REF_DEF.finditer(text)]
                for target in links:
                    if URL_SCHEME.match(target):
                        continue
                    path, _, anchor = target.partition("#")
                    base = os.path.dirname(rel)
                    dest = os.path.normpath(os.path.join(base, path)) if path else rel
                    if path and not path_exists(root, dest):
                        err(rel, n, "link '%s' does not resolve inside the repository" % target)
                        continue
                    if anchor and dest.endswith(".md"):
                        if anchor not in md_anchors(os.path.join(root, dest)):
                            err(rel, n, "link '%s': no heading '#%s' in %s" % (target, anchor, dest))
                # Link targets are checked above, relative to the file.
                text = MD_LINK.sub(" ", MD_REF_DEF.sub(" ", text))
            for m in PAGE_REF.finditer(text):
                check_page(rel, n, m.group(1), m.group(2))
            for m in REPO_PATH.finditer(text):
                # In a block of shell commands, ../x is relative to where the
                # command runs (cd build && ../configure), not to the tree.
                if not (code_block and m.group(1).startswith("../")):
                    check_repo_path(rel, n, m.group(1))
            for m in BARE_MD.finditer(text):
                name = m.group(1)
                if not any(path_exists(root, os.path.join(d, name))
                           for d in ("", "docs", os.path.dirname(rel))):
                    err(rel, n, "'%s' is not a Markdown file of the repository" % name)

    for rel in doc_files(root):
        if rel.startswith("docs/man/") and not re.search(
                r"dist_man_MANS\s*\+?=[^\n]*(?:\\\n[^\n]*)*?(?<![\w/.-])%s(?![\w.-])" % re.escape(rel),
                am):
            errors.append("%s: not installed: add it to dist_man_MANS in the local.am of its "
                          "program" % rel)
    return errors


# ---- self-test: the check must be able to fail -------------------------------------


def self_test():
    tmp = tempfile.mkdtemp(prefix="doc-links.")
    try:

        def write(rel, text):
            p = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            with open(p, "w", encoding="utf-8") as f:
                f.write(text)

        write("tools/real-tool", "#!/bin/sh\n")
        write("Makefile.am", "dist_man_MANS =\ninclude tools/local.am\n")
        write("tools/local.am", "dist_man_MANS += docs/man/tool.1 \\\n  docs/man/tool.conf.5\n"
              "check_PROGRAMS += tests/built_here\n")
        write("docs/OTHER.md", "# Other doc\n\n## Second part\n")
        good_readme = ("# t\n\nSee [the other](docs/OTHER.md), [part](docs/OTHER.md#second-part),\n"
                       "[web](https://example.org/x), `tools/real-tool --x`, `tests/built_here`,\n"
                       "`/etc/machnet/machnet.conf`, tool(1), tool.conf(5), ld.so(8), f() and"
                       " [up](#t), OTHER.md.\n\n    cd build && ../configure\n\n")
        bad_readme = good_readme + (
            "Broken: [gone](docs/GONE.md), [anchor](docs/OTHER.md#no-such-part),\n"
            "`../elsewhere/NOTES.md`, `tools/not-here`, nosuch(7), see NOTES.md.\n")
        good_page = (".TH TOOL 1\n.SH NAME\ntool \\- a tool\n.SH SEE ALSO\n"
                     ".BR tool.conf (5),\n.BR ld.so (8),\n.I docs/OTHER.md\n")
        bad_page = good_page + ".BR machnet\\-gone (1),\n\\fBother\\fP(3)\n.I src/missing.c\n"
        conf_page = ".TH TOOL.CONF 5\n.SH NAME\ntool.conf \\- its file\n"

        write("README.md", good_readme)
        write("docs/man/tool.1", good_page)
        write("docs/man/tool.conf.5", conf_page)
        got = check(tmp)
        if got:
            print("self-test: a correct tree gave errors:\n  " + "\n  ".join(got))
            return False

        write("README.md", bad_readme)
        write("docs/man/tool.1", bad_page)
        write("docs/man/extra.8", ".TH EXTRA 8\n.SH NAME\nextra \\- not installed\n")
        got = sorted(check(tmp))
        want = sorted([
            "README.md:9: link 'docs/GONE.md' does not resolve inside the repository",
            "README.md:9: link 'docs/OTHER.md#no-such-part': no heading '#no-such-part' in "
            "docs/OTHER.md",
            "README.md:10: '../elsewhere/NOTES.md' points outside the repository",
            "README.md:10: 'tools/not-here' does not exist in the tree",
            "README.md:10: page nosuch(7) is neither in docs/man/ nor an allowed system page",
            "README.md:10: 'NOTES.md' is not a Markdown file of the repository",
            "docs/man/tool.1:8: page machnet-gone(1) is neither in docs/man/ nor an allowed "
            "system page",
            "docs/man/tool.1:9: page other(3) is neither in docs/man/ nor an allowed system page",
            "docs/man/tool.1:10: 'src/missing.c' does not exist in the tree",
            "docs/man/extra.8: not installed: add it to dist_man_MANS in the local.am of its "
            "program",
        ])
        if got != want:
            print("self-test: a tree with one mistake of each kind gave:\n  " + "\n  ".join(got) +
                  "\nexpected:\n  " + "\n  ".join(want))
            return False
        return True
    finally:
        shutil.rmtree(tmp)


def main(argv):
    root = None
    if len(argv) == 3 and argv[1] == "--root":
        root = argv[2]
    elif len(argv) != 1:
        print(__doc__)
        return 2
    ok = True
    if root is None:
        root = os.environ.get("MACHNET_SRCDIR") or os.path.normpath(
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
        if not self_test():
            ok = False
        else:
            print("ok: self-test (each kind of broken reference is caught)")
    errors = check(root)
    for e in errors:
        print("FAIL: " + e)
    n = len(doc_files(root))
    if errors:
        print("%d broken reference(s) in the %d documentation files of %s" % (len(errors), n, root))
        ok = False
    else:
        print("ok: every link, path and page reference in %d files resolves" % n)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
