// The rsync daemon's `pre-xfer exec` script (see daemon-conf.ts, which names it
// in rsyncd.conf): the only request a module answers is its root.

/**
 * The `pre-xfer exec` script: a transfer must name the module root and
 * nothing else. The daemon's excludes match the names a transfer uses, not
 * the files they lead to (rsyncd.conf(5), "filter"), so a request naming
 * `alias/key.txt`, with `alias -> secret`, reads an excluded file under a
 * name no exclude matches; a symlink to "." or to an ancestor does the same
 * for anchored excludes. Pulling the root, the daemon walks real directories
 * only and sends every symlink as a symlink (the options that follow them are
 * refused), so each name it meets is the file's own name and the excludes
 * hold. Agents always pull rsync://host:port/MODULE/ with an include list.
 *
 * It runs as the daemon's own user, outside the chroot, before anything is
 * sent; exit 1 aborts the connection with its stdout shown to the client.
 * The request is checked twice: RSYNC_REQUEST, and the raw arguments, where
 * options (each starting with "-") come first, then ".", then the paths (the
 * root is "/" in a chroot, "." without one). A
 * non-option before "." (or after "--") would become the directory the
 * daemon serves from.
 */
export const PRE_XFER_SCRIPT = `#!/bin/sh
# Written by the inosync master: a transfer names the module root, nothing else.
refuse() {
  echo "inosync: $1; only rsync://HOST:PORT/$RSYNC_MODULE_NAME/ can be pulled"
  exit 1
}
[ "$RSYNC_REQUEST" = "$RSYNC_MODULE_NAME/" ] || refuse "a path below the module was requested"
i=1
while :; do
  eval "isset=\\\${RSYNC_ARG$i+1}"
  [ -n "$isset" ] || refuse "the request names no path"
  eval "arg=\\\${RSYNC_ARG$i}"
  i=$((i + 1))
  case $arg in
    .) break ;;
    --) refuse "the request ends its options early" ;;
    -?*) ;;
    *) refuse "the request holds an argument that is not an option" ;;
  esac
done
eval "arg=\\\${RSYNC_ARG$i-}"
eval "more=\\\${RSYNC_ARG$((i + 1))+1}"
# The root is "/" in a chroot and "." without one (a master not running as root).
case $arg in /|.) ;; *) refuse "a path below the module was requested" ;; esac
[ -z "$more" ] || refuse "a path below the module was requested"
exit 0
`;
