module switchboard.example/go_world_clock

go 1.24
