package s3test_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/chute-dev/chute/uploader/uploadertest/s3test"
)

// An emulator hands out what a provider's API would: a presigned PUT URL (RedGIFs), or a POST
// policy form (Xvid) whose fields go in order with the file last; it then checks what arrived.
// In a test, s3test.Start(t) gives MinIO (or the stand-in with CHUTE_TEST_NO_MINIO=1).
func Example() {
	s, err := s3test.StartStandIn(s3test.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ctx := context.Background()

	put, err := s.PresignPut(ctx, "uploads/clip.mp4", 10*time.Minute)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = put // the ticket's URL; the provider PUTs the file to it with an exact Content-Length

	form, err := s.PresignPost(s3test.PostPolicy{Fields: []s3test.FormField{
		{Name: "name", Value: "clip.mp4", StartsWith: true},
		{Name: "success_action_status", Value: "201"},
		{Name: "policy"}, // the signing fields go here
		{Name: "key", Value: "tmp/42/clip.mp4", StartsWith: true, Prefix: "tmp/42/"},
		{Name: "acl", Value: "private"},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	var names []string
	for _, f := range form.Fields {
		names = append(names, f.Name)
	}
	fmt.Println(strings.Join(names, " "))

	if _, err := s.Stat(ctx, "tmp/42/clip.mp4"); err != nil {
		fmt.Println("not uploaded yet")
	}
	// Output:
	// name success_action_status policy x-amz-algorithm x-amz-credential x-amz-date x-amz-signature key acl
	// not uploaded yet
}
