/*
 * csi's small default YARA rule set: strings that have no business in a
 * production container's memory or file-system changes. Each rule carries
 * a severity, a description and MITRE ATT&CK techniques in its meta, and a
 * csi_prefilter: a Hyperscan expression that is part of every match of the
 * rule's strings, so that YARA scans only the bytes around its hits
 * (forensics/analysis/prefilter.py). Keep every repeat bounded.
 */

rule cryptominer_strings
{
    meta:
        csi_prefilter = "s\\x00t\\x00r\\x00a\\x00t\\x00u\\x00m\\x00\\+|stratum\\+|(?i:xmrig|randomx)|--donate-level"
        description = "cryptocurrency miner: pool protocol or miner options"
        severity = "high"
        mitre = "T1496"
    strings:
        $stratum = "stratum+tcp://" ascii wide
        $stratum_ssl = "stratum+ssl://" ascii wide
        $xmrig = "xmrig" ascii nocase
        $donate = "--donate-level" ascii
        $algo = "randomx" ascii nocase
    condition:
        any of them
}

rule reverse_shell_strings
{
    meta:
        csi_prefilter = "/dev/tcp/|-e /bin/|(?i:socat)|pty\\.spawn"
        description = "reverse shell one-liner"
        severity = "high"
        mitre = "T1059.004"
    strings:
        $bash_tcp = /(ba)?sh -i *[>&]+ *\/dev\/tcp\/[0-9a-zA-Z.\-]{1,64}\/[0-9]{1,5}/
        $nc_e = /\bnc(at)? [^\n\x00]{0,80}-e \/bin\/(ba)?sh/
        $socat = /socat [^\n\x00]{0,80}exec:['"]?(\/bin\/)?(ba)?sh/ nocase
        $py_pty = "pty.spawn(\"/bin/sh\")"
    condition:
        any of them
}

rule download_and_execute
{
    meta:
        csi_prefilter = "curl |wget "
        description = "download piped into a shell (stager)"
        severity = "high"
        mitre = "T1105,T1059.004"
    strings:
        $curl_sh = /curl [^\n\x00|;]{1,300}\| {0,4}(ba)?sh/
        $wget_sh = /wget [^\n\x00|;]{1,300}\| {0,4}(ba)?sh/
    condition:
        any of them
}

rule linux_persistence_paths
{
    meta:
        csi_prefilter = "/etc/ld\\.so\\.preload|/etc/cron\\.d/|/var/spool/cron/|/\\.ssh/authorized_keys"
        description = "references to Linux persistence locations"
        severity = "medium"
        mitre = "T1574.006,T1053.003,T1098.004"
    strings:
        $preload = "/etc/ld.so.preload"
        $cron = "/etc/cron.d/"
        $spool = "/var/spool/cron/"
        $keys = "/.ssh/authorized_keys"
    condition:
        any of them
}
