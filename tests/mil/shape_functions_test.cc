// The public shape functions (issue 17 item 6): typed operands in, the output type out, no
// Program and no OpArgs.
#include "common/mil/shape_functions.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anerd::mil {
namespace {

using ::testing::HasSubstr;
using Shape = std::vector<int64_t>;

TensorType F16(Shape s) { return TensorType{DType::kFp16, std::move(s)}; }
TensorType F32(Shape s) { return TensorType{DType::kFp32, std::move(s)}; }

Shape ShapeOf(const absl::StatusOr<TensorType>& t) {
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? t->shape : Shape{-1};
}

std::string Error(const absl::StatusOr<TensorType>& t) {
  EXPECT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(t.status().message());
}

TEST(InferConvShape, ValidSameStridesDilationsGroupsAndBias) {
  ConvParams p;
  EXPECT_EQ(ShapeOf(InferConvShape(F16({1, 8, 10, 12}), F16({4, 8, 3, 3}), p)),
            (Shape{1, 4, 8, 10}));
  p.strides = Shape{2, 2};
  p.pad_type = "same";
  EXPECT_EQ(ShapeOf(InferConvShape(F16({1, 8, 10, 11}), F16({4, 8, 3, 3}), p)),
            (Shape{1, 4, 5, 6}));
  ConvParams custom;
  custom.pad_type = "custom";
  custom.pad = Shape{1, 1, 2, 0};
  custom.dilations = Shape{2, 1};
  custom.groups = 2;
  const TensorType bias = F16({6});
  EXPECT_EQ(ShapeOf(InferConvShape(F16({2, 8, 9, 7}), F16({6, 4, 3, 3}), custom, &bias)),
            (Shape{2, 6, 7, 7}));
  EXPECT_EQ(ShapeOf(InferConvShape(F32({1, 3, 16}), F32({5, 3, 4}), ConvParams{})),
            (Shape{1, 5, 13}));
}

TEST(InferConvShape, NamesWhatIsWrong) {
  EXPECT_THAT(Error(InferConvShape(F16({8, 10}), F16({4, 8}), ConvParams{})),
              HasSubstr("rank 3 to 5"));
  EXPECT_THAT(Error(InferConvShape(F16({1, 8, 10, 10}), F16({4, 6, 3, 3}), ConvParams{})),
              HasSubstr("x has 8 channels"));
  EXPECT_THAT(Error(InferConvShape(F16({1, 8, 2, 2}), F16({4, 8, 3, 3}), ConvParams{})),
              HasSubstr("kernel extent 3 exceeds padded input 2"));
  ConvParams bad;
  bad.strides = Shape{1};
  EXPECT_THAT(Error(InferConvShape(F16({1, 8, 4, 4}), F16({4, 8, 1, 1}), bad)),
              HasSubstr("strides needs 2 values, not 1"));
  const TensorType bias = F16({3});
  EXPECT_THAT(Error(InferConvShape(F16({1, 8, 4, 4}), F16({4, 8, 1, 1}), ConvParams{}, &bias)),
              HasSubstr("bias must be [4]"));
  EXPECT_THAT(Error(InferConvShape(F16({1, 8, 4, 4}), F32({4, 8, 1, 1}), ConvParams{})),
              HasSubstr("dtypes differ"));
}

TEST(InferMatmulShape, BroadcastsBatchesTransposesAndVectors) {
  EXPECT_EQ(ShapeOf(InferMatmulShape(F16({2, 1, 3, 4}), F16({5, 4, 6}))), (Shape{2, 5, 3, 6}));
  EXPECT_EQ(ShapeOf(InferMatmulShape(F16({4, 3}), F16({6, 4}), true, true)), (Shape{3, 6}));
  EXPECT_EQ(ShapeOf(InferMatmulShape(F16({4}), F16({4, 6}))), (Shape{6}));
  EXPECT_EQ(ShapeOf(InferMatmulShape(F16({3, 4}), F16({4}))), (Shape{3}));
  EXPECT_THAT(Error(InferMatmulShape(F16({3, 4}), F16({5, 6}))),
              HasSubstr("inner dimensions differ: x gives 4, y gives 5"));
  EXPECT_THAT(Error(InferMatmulShape(F16({2, 3, 4}), F16({3, 4, 6}))), HasSubstr("broadcast"));
}

TEST(InferLinearShape, MapsTheLastDimension) {
  const TensorType bias = F16({7});
  EXPECT_EQ(ShapeOf(InferLinearShape(F16({2, 3, 5}), F16({7, 5}), &bias)), (Shape{2, 3, 7}));
  EXPECT_THAT(Error(InferLinearShape(F16({2, 4}), F16({7, 5}))), HasSubstr("does not take 4"));
}

TEST(ElementwiseAndLayoutShapes, BroadcastReshapeTransposeReduceConcat) {
  EXPECT_EQ(ShapeOf(InferBroadcastShape(F16({4, 1, 3}), F16({5, 1}))), (Shape{4, 5, 3}));
  EXPECT_EQ(ShapeOf(InferReshapeShape(F16({2, 3, 4}), {0, -1})), (Shape{2, 12}));
  EXPECT_THAT(Error(InferReshapeShape(F16({2, 3, 4}), {5, -1})), HasSubstr("cannot infer -1"));
  EXPECT_EQ(ShapeOf(InferTransposeShape(F16({2, 3, 4}), {-1, 0, 1})), (Shape{4, 2, 3}));
  EXPECT_THAT(Error(InferTransposeShape(F16({2, 3, 4}), {0, 0, 1})), HasSubstr("repeated"));
  EXPECT_EQ(ShapeOf(InferReduceShape(F16({2, 3, 4}), {-1}, true)), (Shape{2, 3, 1}));
  EXPECT_EQ(ShapeOf(InferReduceShape(F16({2, 3, 4}), {0, 2}, false)), (Shape{3}));
  EXPECT_EQ(ShapeOf(InferConcatShape({F16({2, 3}), F16({2, 5})}, -1)), (Shape{2, 8}));
  EXPECT_THAT(Error(InferConcatShape({F16({2, 3}), F16({2, 5})}, 1, true)),
              HasSubstr("must be equal for interleave"));
  EXPECT_THAT(Error(InferConcatShape({}, 0)), HasSubstr("at least one value"));
}

TEST(InferSdpaAndGatherShape, ComputeTheirOutputs) {
  const TensorType mask = TensorType{DType::kBool, {1, 4, 6}};
  EXPECT_EQ(ShapeOf(InferSdpaShape(F16({2, 4, 8}), F16({2, 6, 8}), F16({2, 6, 3}), &mask)),
            (Shape{2, 4, 3}));
  const TensorType wide = F16({4, 7});
  EXPECT_THAT(Error(InferSdpaShape(F16({2, 4, 8}), F16({2, 6, 8}), F16({2, 6, 3}), &wide)),
              HasSubstr("do not broadcast"));
  const TensorType idx = TensorType{DType::kInt32, {5, 2}};
  EXPECT_EQ(ShapeOf(InferGatherShape(F16({10, 3}), idx, 0)), (Shape{5, 2, 3}));
  EXPECT_THAT(Error(InferGatherShape(F16({10, 3}), idx, 0, 1)), HasSubstr("batch_dims"));
}

}  // namespace
}  // namespace anerd::mil
