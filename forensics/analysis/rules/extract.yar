/*
 * csi's extraction patterns: compiled together with the YARA rule sets so that
 * one pass over memory and changed files finds IOCs, secrets and rule hits.
 * Every rule declares csi_prefilter, a Hyperscan expression that is part of
 * every match of its strings: YARA then scans only the bytes around its hits
 * (forensics/analysis/prefilter.py). Keep every repeat bounded: no match may
 * be longer than the prefilter's margin (4 KiB).
 */

rule url
{
    meta:
        csi_prefilter = "://"
    strings:
        $u = /(https?|ftp|wss?|stratum\+(tcp|ssl|tls)):\/\/[a-zA-Z0-9._\-]{1,253}(:[0-9]{1,5})?(\/[a-zA-Z0-9._~%!$&'()*+,;=:@\/\-?#]{0,200})?/
    condition:
        any of them
}

rule download_exec
{
    meta:
        csi_prefilter = "curl|wget"
    strings:
        $a = /(curl|wget)[ \t][^\n\r\x00|;]{1,300}\|[ \t]{0,4}(ba|z|da)?sh/
    condition:
        any of them
}

rule monero_wallet
{
    meta:
        csi_prefilter = "(wallet|user|-u)[=: ]{1,3}4[0-9AB]"
    strings:
        $w = /(wallet|user|-u)[=: ]{1,3}4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}/
    condition:
        any of them
}

rule aws_access_key
{
    meta:
        csi_prefilter = "AKIA|ASIA"
    strings:
        $a = /(AKIA|ASIA)[0-9A-Z]{16}/
    condition:
        any of them
}

rule github_token
{
    meta:
        csi_prefilter = "gh[pousr]_"
    strings:
        $a = /gh[pousr]_[A-Za-z0-9]{36}/
    condition:
        any of them
}

rule slack_token
{
    meta:
        csi_prefilter = "xox[abprs]-"
    strings:
        $a = /xox[abprs]-[0-9A-Za-z\-]{10,72}/
    condition:
        any of them
}

rule stripe_key
{
    meta:
        csi_prefilter = "[sr]k_live_"
    strings:
        $a = /[sr]k_live_[0-9A-Za-z]{10,99}/
    condition:
        any of them
}

rule private_key
{
    meta:
        csi_prefilter = "-----BEGIN "
    strings:
        $a = /-----BEGIN ([A-Z]{2,10} )?PRIVATE KEY-----/
    condition:
        any of them
}
