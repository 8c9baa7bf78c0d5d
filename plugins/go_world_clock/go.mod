// The go_world_clock example plugin (plugins/build.sh go): standard library only.
module switchboard.example/go_world_clock

go 1.24
