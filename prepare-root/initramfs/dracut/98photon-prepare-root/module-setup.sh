#!/bin/bash
# dracut module: mounts the deployment named by ostree= at /sysroot before
# initrd-root-fs.target, so systemd's initrd-switch-root boots it (the
# place of ostree's own "ostree" module; do not include both).
#
# Install this directory as /usr/lib/dracut/modules.d/98photon-prepare-root
# and add it: add_dracutmodules+=" photon-prepare-root " in
# /etc/dracut.conf.d/photon.conf. Needs a systemd initramfs.

check() {
    require_binaries /usr/lib/photon-upgrade/photon-prepare-root \
        /usr/lib/photon-upgrade/photon-prepare-sysroot || return 1
    # Only when asked for (add_dracutmodules) or required by another module.
    return 255
}

depends() {
    echo systemd
    return 0
}

install() {
    inst_multiple /usr/lib/photon-upgrade/photon-prepare-root \
        /usr/lib/photon-upgrade/photon-prepare-sysroot \
        mount umount mkdir rmdir
    inst_simple "$moddir/photon-prepare-root.service" \
        "${systemdsystemunitdir}/photon-prepare-root.service"
    mkdir -p "${initdir}${systemdsystemunitdir}/initrd-root-fs.target.wants"
    ln_r "${systemdsystemunitdir}/photon-prepare-root.service" \
        "${systemdsystemunitdir}/initrd-root-fs.target.wants/photon-prepare-root.service"
}
