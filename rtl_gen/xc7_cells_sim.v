// Behavioural simulation models of the Xilinx 7-series cells rtl_gen/xc7.py instantiates
// (after UG953): for Verilator and Icarus only; synthesis uses the vendor cells.
module LUT6 #(parameter [63:0] INIT = 64'h0) (
    output O, input I0, input I1, input I2, input I3, input I4, input I5);
  assign O = INIT[{I5, I4, I3, I2, I1, I0}];
endmodule

module LUT6_2 #(parameter [63:0] INIT = 64'h0) (
    output O6, output O5, input I0, input I1, input I2, input I3, input I4, input I5);
  assign O6 = INIT[{I5, I4, I3, I2, I1, I0}];
  assign O5 = INIT[{1'b0, I4, I3, I2, I1, I0}];
endmodule

module CARRY4 (
    output [3:0] CO, output [3:0] O, input CI, input CYINIT, input [3:0] DI, input [3:0] S);
  wire c0 = CI | CYINIT;
  assign CO[0] = S[0] ? c0 : DI[0];
  assign CO[1] = S[1] ? CO[0] : DI[1];
  assign CO[2] = S[2] ? CO[1] : DI[2];
  assign CO[3] = S[3] ? CO[2] : DI[3];
  assign O = S ^ {CO[2:0], c0};
endmodule
