# A program that knows nothing of fdpass, passing descriptors as Perl programs do, with
# IO::FDPass (Debian's libio-fdpass-perl). Run by tests/test_interop.c with its end of a Unix
# socket as descriptor 3:
#
#   peer.pl send   IO::FDPass::send the write end of a pipe, then read the pipe: the byte the
#                  other side wrote through the descriptor must come out
#   peer.pl recv   IO::FDPass::recv one descriptor and write byte 0 through it
#
# Both check that they leave their own descriptor table as they found it; any failure dies,
# which exits non-zero with the reason on stderr.
use strict;
use warnings;
use IO::FDPass;

alarm 30;    # never outlive a test that failed on the other side

sub open_fds {
	opendir(my $dir, "/proc/self/fd") or die "opendir: $!";
	my @fds = sort grep { !/^\./ } readdir($dir);
	closedir($dir);
	return join(",", @fds);
}

my $mode = shift @ARGV // die "usage: peer.pl send|recv\n";
my $before = open_fds();

if ($mode eq "send") {
	pipe(my $r, my $w) or die "pipe: $!";
	IO::FDPass::send(3, fileno $w) or die "IO::FDPass::send: $!";
	close($w);
	local $/;
	my $got = <$r>;
	close($r);
	$got eq "\0" or die "through the pipe: got '" . ($got // "") . "', wanted one zero byte\n";
} elsif ($mode eq "recv") {
	my $fd = IO::FDPass::recv(3);
	$fd >= 0 or die "IO::FDPass::recv: $!";
	open(my $fh, ">&=", $fd) or die "fdopen: $!";
	syswrite($fh, "\0") == 1 or die "write through the descriptor: $!";
	close($fh);
} else {
	die "peer.pl: unknown mode $mode\n";
}
my $after = open_fds();
$after eq $before or die "descriptors left open: $after, was $before\n";
exit 0;
