#!/usr/bin/perl
# Writes the seed files for fuzz/seed.sh (which documents what they are). Uses only perl-base.
# Arguments: OUT_DIR RFC4475_DIR; stdin: "<source> <proto> <hex>" lines in capture order.
use strict;
use warnings;

my ($out, $rfc4475) = @ARGV;
my @targets = qw(sip_message sip_uri digest_challenge endpoint_input sdp rtp);
mkdir $out unless -d $out;
for my $t (@targets) {
    mkdir "$out/$t" unless -d "$out/$t";
}

my %count;
sub seed {
    my ($target, $source, $bytes) = @_;
    return unless length $bytes;
    my $n = ++$count{"$target/$source"};
    my $path = sprintf "%s/%s/seed-%s-%03d", $out, $target, $source, $n;
    open my $fh, '>:raw', $path or die "seed.pl: $path: $!";
    print $fh $bytes;
    close $fh;
}

# What one SIP message seeds besides sip_message: its body (SDP), the URIs it names and
# its digest headers.
sub from_sip {
    my ($source, $msg) = @_;
    seed('sip_message', $source, $msg);
    my ($head, $body) = split /\r?\n\r?\n/, $msg, 2;
    seed('sdp', $source, $body) if defined $body && $body =~ /^v=/;
    $head //= '';
    if ($head =~ /^[A-Za-z]+ +(\S+) +SIP\//) {
        seed('sip_uri', $source, $1);
    }
    # Unfold continuation lines (RFC 3261 §7.3.1) before reading header values.
    (my $unfolded = $head) =~ s/\r?\n[ \t]+/ /g;
    for my $line (split /\r?\n/, $unfolded) {
        my ($name, $value) = $line =~ /^([A-Za-z-]+)[ \t]*:[ \t]*(.*?)[ \t\r]*$/ or next;
        if ($name =~ /^(WWW-Authenticate|Proxy-Authenticate|Authorization|Proxy-Authorization)$/i) {
            seed('digest_challenge', $source, $value);
        }
        if ($name =~ /^(To|From|Contact|Route|Record-Route|t|f|m)$/i) {
            seed('sip_uri', $source, $1) while $value =~ /<([^>]*)>/g;
        }
    }
}

# endpoint_input records (see fuzz_targets/endpoint_input.rs): time step, flags, length, bytes.
sub records {
    my ($flags, @messages) = @_;
    return join '', map { pack('CCn', 2, $flags, length $_) . $_ } @messages;
}

my %messages;    # source -> SIP messages in capture order
my %media;       # "source/proto" -> packets kept
while (my $line = <STDIN>) {
    chomp $line;
    my ($source, $proto, $hex) = split / /, $line, 3;
    next unless defined $hex && length $hex;
    my $bytes = pack 'H*', $hex;
    if ($proto eq 'sip') {
        from_sip($source, $bytes);
        push @{ $messages{$source} }, $bytes;
    } elsif ($proto eq 'sdp') {
        seed('sdp', $source, $bytes);
    } elsif ($proto eq 'rtp' || $proto eq 'rtcp') {
        # Thousands of near-identical packets per stream add nothing; keep the first few.
        next if ++$media{"$source/$proto"} > 40;
        seed('rtp', $source, $bytes);
    }
}

opendir my $dh, $rfc4475 or die "seed.pl: $rfc4475: $!";
for my $file (sort grep { /\.dat$/ } readdir $dh) {
    open my $fh, '<:raw', "$rfc4475/$file" or die "seed.pl: $file: $!";
    local $/;
    my $msg = <$fh>;
    close $fh;
    (my $source = $file) =~ s/\.dat$//;
    from_sip("rfc4475-$source", $msg);
    seed('endpoint_input', "rfc4475-$source", records(0x00, $msg));
}
closedir $dh;

# Each capture's SIP exchange, in windows of 12 messages: once just fed in, once with the call
# logic answering new requests with 200 (flags 0x40), and once over TCP answering 486 (0xa1).
for my $source (sort keys %messages) {
    my @all = @{ $messages{$source} };
    for (my $i = 0; $i < @all; $i += 12) {
        my $end = $i + 11 < $#all ? $i + 11 : $#all;
        my @window = @all[$i .. $end];
        seed('endpoint_input', $source, records($_, @window)) for 0x00, 0x40, 0xa1;
    }
}

# Challenges and credentials the captures may lack: RFC 7616 §3.9.1 (SHA-256 and MD5 with
# qop), RFC 8760 SHA-512-256, and a list of several challenges (RFC 7235 §4.1).
my @digest = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
        . 'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
        . 'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
    'Digest realm="sip.example.com", nonce="abc", algorithm=SHA-512-256, qop="auth", stale=TRUE, userhash=true',
    'Digest realm="a", nonce="1", algorithm=SHA-256, Digest realm="a", nonce="2", algorithm=MD5, Basic realm="b"',
    'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, '
        . 'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", '
        . 'qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", '
        . 'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"',
);
seed('digest_challenge', 'rfc', $_) for @digest;
