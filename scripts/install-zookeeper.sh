#!/usr/bin/env bash
# Makes Apache ZooKeeper from Debian's `zookeeper` package available (zkCli.sh and the
# server, 3.8), installing it on first use. Prints the package's home directory on its
# last line: zkCli is at $home/bin/zkCli.sh, the server's classpath comes from
# $home/bin/zkEnv.sh.
set -euo pipefail
home=/usr/share/zookeeper
if [[ ! -x $home/bin/zkCli.sh ]]; then
  echo "installing Debian's zookeeper package" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >&2
fi
echo "$home"
