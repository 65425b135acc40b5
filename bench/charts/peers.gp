# Requests (= new connections) per second per server, from each load tool, and the server's
# CPU per connection. Input (run.sh writes it): label, wrk rate, fdp-load rate, server CPU
# µs/conn, leader CPU µs/conn; NaN where a tool did not run.
# Usage: gnuplot -e "data='peers.dat'; out='peers.png'" peers.gp
set terminal pngcairo size 1400,900 font "DejaVu Sans,11" noenhanced
set output out
set datafile separator "\t"
set datafile missing "NaN"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics lc rgb "#dddddd"
set key top right
set xtics rotate by -25 scale 0 font ",10"
set yrange [0:*]
set offsets 0, 0, graph 0.18, 0
set lmargin 10
set rmargin 14
set bmargin 7
set multiplot layout 2,1
set title "New connections per second (HTTP, Connection: close; higher is better)"
set ylabel "connections/s"
plot data using 2:xtic(1) title "wrk" lc rgb "#4c72b0", \
     '' using 3 title "fdp-load" lc rgb "#dd8452", \
     '' using 0:2:(sprintf("%.0f", $2)) with labels offset -1.6,0.6 font ",8" notitle, \
     '' using 0:3:(sprintf("%.0f", $3)) with labels offset 1.6,0.6 font ",8" notitle
set title "Server CPU per connection during the fdp-load run (lower is better)"
set ylabel "µs per connection"
plot data using 4:xtic(1) title "whole server" lc rgb "#55a868", \
     '' using 5 title "leader process (master / primary)" lc rgb "#c44e52", \
     '' using 0:4:(sprintf("%.1f", $4)) with labels offset -1.6,0.6 font ",8" notitle, \
     '' using 0:5:(sprintf("%.1f", $5)) with labels offset 1.6,0.6 font ",8" notitle
unset multiplot
